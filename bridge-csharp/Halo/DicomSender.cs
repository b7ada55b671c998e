// Sending halo's DICOM outputs to the planning system's DICOM import
// (C-ECHO, then C-STORE), with a per-instance report.
using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace Halo
{
    /// <summary>The outcome of a send: how many instances were stored.</summary>
    public sealed class SendResult
    {
        internal SendResult(int stored, int failed, string json)
        {
            Stored = stored;
            Failed = failed;
            ReportJson = json;
        }

        /// <summary>Instances the peer stored.</summary>
        public int Stored { get; private set; }

        /// <summary>Instances not stored (each is named in <see cref="ReportJson"/>).</summary>
        public int Failed { get; private set; }

        /// <summary>True when every instance was stored.</summary>
        public bool AllStored
        {
            get { return Failed == 0; }
        }

        /// <summary>The full per-instance report as JSON.</summary>
        public string ReportJson { get; private set; }
    }

    /// <summary>Sends DICOM files to a storage SCP.</summary>
    public static class DicomSender
    {
        /// <summary>
        /// Sends files and folders to <paramref name="destination"/> (AE@HOST:PORT).
        /// Network failures are reported per instance in the result, never
        /// thrown; bad arguments throw <see cref="HaloException"/>.
        /// </summary>
        public static SendResult Send(
            string destination,
            string[] paths,
            string callingAe = null,
            double timeoutSeconds = 30,
            int retries = 2,
            IProgress<double> progress = null,
            CancellationToken cancellation = default(CancellationToken))
        {
            if (destination == null)
            {
                throw new ArgumentNullException("destination");
            }
            if (paths == null || paths.Length == 0)
            {
                throw new ArgumentException("no paths given", "paths");
            }
            if (retries < 0)
            {
                throw new ArgumentOutOfRangeException("retries");
            }
            var pinned = new GCHandle[paths.Length];
            var pointers = new IntPtr[paths.Length];
            Native.Progress callback = (user, done, total) =>
            {
                if (progress != null && total.ToUInt64() > 0)
                {
                    progress.Report((double)done.ToUInt64() / total.ToUInt64());
                }
                return !cancellation.IsCancellationRequested;
            };
            ReportHandle report;
            try
            {
                for (int i = 0; i < paths.Length; i++)
                {
                    pinned[i] = GCHandle.Alloc(Status.Utf8(paths[i]), GCHandleType.Pinned);
                    pointers[i] = pinned[i].AddrOfPinnedObject();
                }
                Status.Check(Native.halo_send(
                    Status.Utf8(destination), Status.Utf8(callingAe), pointers,
                    (UIntPtr)pointers.Length, timeoutSeconds, (uint)retries, callback,
                    IntPtr.Zero, out report));
            }
            finally
            {
                foreach (var h in pinned)
                {
                    if (h.IsAllocated)
                    {
                        h.Free();
                    }
                }
                GC.KeepAlive(callback);
            }
            using (report)
            {
                UIntPtr stored, failed, needed;
                Status.Check(Native.halo_send_report_counts(report, out stored, out failed));
                Native.halo_send_report_json(report, null, UIntPtr.Zero, out needed);
                var buffer = new byte[(int)needed.ToUInt64()];
                Status.Check(Native.halo_send_report_json(
                    report, buffer, (UIntPtr)buffer.Length, out needed));
                string json = Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1);
                return new SendResult((int)stored.ToUInt64(), (int)failed.ToUInt64(), json);
            }
        }

        /// <summary>Owns a HaloSendReport pointer.</summary>
        internal sealed class ReportHandle : SafeHandle
        {
            public ReportHandle()
                : base(IntPtr.Zero, true)
            {
            }

            public override bool IsInvalid
            {
                get { return handle == IntPtr.Zero; }
            }

            protected override bool ReleaseHandle()
            {
                return Native.halo_send_report_free(handle) == HaloStatus.Ok;
            }
        }

        internal static class Native
        {
            static Native()
            {
                NativeLibrary.EnsureLoaded();
            }

            [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
            [return: MarshalAs(UnmanagedType.I1)]
            internal delegate bool Progress(IntPtr user, UIntPtr done, UIntPtr total);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_send(
                byte[] destination, byte[] calling_ae, IntPtr[] paths, UIntPtr n_paths,
                double timeout_s, uint retries, Progress progress, IntPtr user,
                out ReportHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_send_report_counts(
                ReportHandle report, out UIntPtr stored, out UIntPtr failed);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_send_report_json(
                ReportHandle report, byte[] buf, UIntPtr len, out UIntPtr needed);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_send_report_free(IntPtr report);
        }
    }
}
