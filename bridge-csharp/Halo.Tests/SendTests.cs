// Sending through the bridge to a storescp this test starts on loopback.
using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using Halo;
using NUnit.Framework;

namespace Halo.Tests
{
    [TestFixture]
    public class SendTests
    {
        private Process storescp;
        private string received;
        private int port;

        [TestFixtureSetUp]
        public void StartStorescp()
        {
            port = FreePort();
            received = Path.Combine(Path.GetTempPath(), "halo-send-" + Guid.NewGuid());
            Directory.CreateDirectory(received);
            // dcmtk's storescp (tools/test.sh sets HALO_STORESCP so that
            // pynetdicom's same-named script in .venv/bin is not taken).
            string exe = Environment.GetEnvironmentVariable("HALO_STORESCP");
            var info = new ProcessStartInfo(string.IsNullOrEmpty(exe) ? "/usr/bin/storescp" : exe,
                "--aetitle STORESCP --output-directory " + received + " " + port)
            {
                UseShellExecute = false,
            };
            storescp = Process.Start(info);
            for (int i = 0; i < 50; i++)
            {
                try
                {
                    using (var c = new TcpClient("127.0.0.1", port))
                    {
                        return;
                    }
                }
                catch (SocketException)
                {
                    Thread.Sleep(100);
                }
            }
            Assert.Fail("storescp did not start on port " + port);
        }

        [TestFixtureTearDown]
        public void StopStorescp()
        {
            if (storescp != null && !storescp.HasExited)
            {
                storescp.Kill();
                storescp.WaitForExit();
            }
            if (received != null && Directory.Exists(received))
            {
                Directory.Delete(received, true);
            }
        }

        [Test]
        public void Every_instance_of_a_series_is_stored_and_reported()
        {
            var fractions = new System.Collections.Generic.List<double>();

            var result = DicomSender.Send("STORESCP@127.0.0.1:" + port,
                new[] { TestData.CorpusGood }, "HALOTEST", 5, 0, new SyncProgress(fractions));

            Assert.IsTrue(result.AllStored, result.ReportJson);
            Assert.AreEqual(4, result.Stored);
            Assert.AreEqual(4, Directory.GetFiles(received).Length);
            Assert.AreEqual(1.0, fractions[fractions.Count - 1], 1e-9);
        }

        [Test]
        public void A_peer_nobody_listens_on_is_reported_per_instance_not_thrown()
        {
            var result = DicomSender.Send("NOBODY@127.0.0.1:" + FreePort(),
                new[] { TestData.CorpusGood }, null, 1, 0);

            Assert.IsFalse(result.AllStored);
            Assert.AreEqual(4, result.Failed);
            StringAssert.Contains("refused", result.ReportJson);
        }

        [Test]
        public void A_malformed_destination_raises_an_exception_naming_it()
        {
            var ex = Assert.Throws<HaloException>(
                () => DicomSender.Send("no-port-here", new[] { TestData.CorpusGood }));

            StringAssert.Contains("no-port-here", ex.Message);
        }

        private static int FreePort()
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            int p = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return p;
        }

        /// <summary>Records progress synchronously (Progress&lt;T&gt; posts to a context).</summary>
        private sealed class SyncProgress : IProgress<double>
        {
            private readonly System.Collections.Generic.List<double> values;

            public SyncProgress(System.Collections.Generic.List<double> values)
            {
                this.values = values;
            }

            public void Report(double value)
            {
                values.Add(value);
            }
        }
    }
}
