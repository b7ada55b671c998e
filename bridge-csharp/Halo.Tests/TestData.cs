// Where the tests find their data: HALO_REPO (set by tools/test_csharp.sh)
// is the repository root; real scans sit in ../shared beside it.
using System;
using System.IO;
using NUnit.Framework;

namespace Halo.Tests
{
    internal static class TestData
    {
        internal static string Repo
        {
            get
            {
                string repo = Environment.GetEnvironmentVariable("HALO_REPO");
                if (string.IsNullOrEmpty(repo))
                {
                    Assert.Fail("HALO_REPO is not set: run the tests through tools/test_csharp.sh");
                }
                return repo;
            }
        }

        internal static string Corpus
        {
            get { return Path.Combine(Repo, "tests", "dicom-corpus"); }
        }

        internal static string CorpusGood
        {
            get { return Path.Combine(Corpus, "good"); }
        }

        /// <summary>A folder of ../shared, failing in CI and skipping loudly elsewhere.</summary>
        internal static string Shared(params string[] parts)
        {
            string shared = Environment.GetEnvironmentVariable("HALO_SHARED");
            if (string.IsNullOrEmpty(shared))
            {
                shared = Path.Combine(Repo, "..", "shared");
            }
            string path = Path.Combine(shared, Path.Combine(parts));
            if (!Directory.Exists(path) && !File.Exists(path))
            {
                if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI")))
                {
                    Assert.Fail(path + " is missing: it must be present in CI");
                }
                Console.Error.WriteLine("*** SKIPPING: " + path + " is missing ***");
                Assert.Ignore(path + " is missing");
            }
            return path;
        }
    }
}
