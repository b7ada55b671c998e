// The ESAPI-shaped workflows on a fake context built from the sample
// phantom: structures equal halo's own masks voxel for voxel, comparison
// equals the command line's, errors and cancellation behave.
using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using Halo;
using Halo.Esapi;
using NUnit.Framework;

namespace Halo.Tests
{
    [TestFixture]
    public class WorkflowTests
    {
        private static string SampleSeries
        {
            get { return Path.Combine(TestData.Repo, "samples", "series"); }
        }

        private static string SampleModel
        {
            get { return Path.Combine(TestData.Repo, "samples", "model"); }
        }

        private static string TempFolder()
        {
            return Path.Combine(Path.GetTempPath(), "halo-cs-" + Guid.NewGuid());
        }

        private static SegmentOptions Options()
        {
            return new SegmentOptions { ModelFolder = SampleModel, Threads = 1 };
        }

        [Test]
        public void Segmenting_creates_one_structure_per_label_equal_to_halos_masks()
        {
            using (var mr = Volume.ReadSeries(SampleSeries))
            using (var model = Model.Open(SampleModel, "cpu", 1))
            using (var direct = model.Run(mr))
            {
                var image = new FakeImage(mr);
                var set = new FakeStructureSet();

                var outcome = Workflows.SegmentWithUncertainty(image, set, Options());

                CollectionAssert.AreEqual(new[] { "Prostate", "Rectum" },
                    outcome.Structures.Select(s => s.Id).ToArray());
                for (int i = 0; i < 2; i++)
                {
                    float[] want = direct.GetVolume(ResultMap.Mask, i).GetData();
                    byte[] got = ((FakeStructure)outcome.Structures[i]).Rasterize(image);
                    Assert.Greater(want.Count(v => v > 0), 100);
                    for (int k = 0; k < want.Length; k++)
                    {
                        Assert.AreEqual(want[k], got[k], "structure " + i + " voxel " + k);
                    }
                }
            }
        }

        [Test]
        public void Band_structures_are_control_structures_with_short_unique_ids()
        {
            using (var mr = Volume.ReadSeries(SampleSeries))
            {
                var set = new FakeStructureSet();
                var options = Options();
                options.Band = 0.1;

                var outcome = Workflows.SegmentWithUncertainty(new FakeImage(mr), set, options);

                Assert.AreEqual(2, outcome.Bands.Count);
                Assert.IsTrue(outcome.Bands.All(b => b.DicomType == "CONTROL" && !b.IsEmpty));
                var ids = set.Structures.Select(s => s.Id).ToList();
                Assert.IsTrue(ids.All(id => id.Length <= 16), string.Join(",", ids));
                Assert.AreEqual(ids.Count, ids.Distinct(StringComparer.OrdinalIgnoreCase).Count());
                StringAssert.StartsWith("U>=0.1 ", outcome.Bands[0].Id);
            }
        }

        [Test]
        public void An_existing_structure_id_gets_a_suffix_instead_of_failing()
        {
            var set = new FakeStructureSet();
            set.AddStructure("ORGAN", "Prostate");

            string id = Workflows.UniqueId(set, "Prostate");

            Assert.AreEqual("Prostate_1", id);
            Assert.AreEqual("AVeryLongStruc_1", Workflows.UniqueId(
                WithStructure("AVeryLongStructu"), "AVeryLongStructureName"));
        }

        [Test]
        public void Summaries_report_uncertainty_highest_on_the_border()
        {
            using (var mr = Volume.ReadSeries(SampleSeries))
            {
                var outcome = Workflows.SegmentWithUncertainty(
                    new FakeImage(mr), new FakeStructureSet(), Options());

                var s = outcome.Summaries[0];
                Assert.AreEqual(1, s.LabelValue);
                Assert.Greater(s.VolumeCm3, 1.0);
                Assert.Greater(s.MeanUncertaintySurface, s.MeanUncertaintyInside);
                Assert.LessOrEqual(s.MaxUncertainty, 0.5);
            }
        }

        [Test]
        public void The_uncertainty_pt_series_is_written_for_import()
        {
            string pt = TempFolder();
            try
            {
                using (var mr = Volume.ReadSeries(SampleSeries))
                {
                    var options = Options();
                    options.SeriesFolder = SampleSeries;
                    options.PtFolder = pt;

                    Workflows.SegmentWithUncertainty(new FakeImage(mr), new FakeStructureSet(), options);

                    Assert.IsTrue(File.Exists(Path.Combine(pt, "rtstruct.dcm")));
                    Assert.AreEqual(mr.Dims[2],
                        Directory.GetFiles(Path.Combine(pt, "uncertainty-Prostate")).Length);
                }
            }
            finally
            {
                if (Directory.Exists(pt))
                {
                    Directory.Delete(pt, true);
                }
            }
        }

        [Test]
        public void Cancelling_a_run_throws_and_adds_no_structure()
        {
            using (var mr = Volume.ReadSeries(SampleSeries))
            using (var cts = new CancellationTokenSource())
            {
                var set = new FakeStructureSet();
                var options = Options();
                options.Cancellation = cts.Token;
                options.Progress = new CancelAt(cts, 0.2);

                Assert.Throws<OperationCanceledException>(
                    () => Workflows.SegmentWithUncertainty(new FakeImage(mr), set, options));

                Assert.AreEqual(0, set.Structures.Count());
            }
        }

        [Test]
        public void Progress_rises_to_one()
        {
            using (var mr = Volume.ReadSeries(SampleSeries))
            using (var model = Model.Open(SampleModel, "cpu", 1))
            {
                var seen = new System.Collections.Generic.List<double>();
                using (model.Run(mr, 0, new Recorder(seen)))
                {
                }

                Assert.Greater(seen.Count, 5);
                Assert.AreEqual(1.0, seen.Last(), 1e-9);
                for (int i = 1; i < seen.Count; i++)
                {
                    Assert.GreaterOrEqual(seen[i], seen[i - 1]);
                }
            }
        }

        [Test]
        public void Comparing_structures_equals_the_command_line()
        {
            string outDir = TempFolder();
            try
            {
                using (var mr = Volume.ReadSeries(SampleSeries))
                using (var model = Model.Open(SampleModel, "cpu", 1))
                using (var result = model.Run(mr))
                {
                    result.WriteDicom(SampleSeries, outDir, 0.1);
                    var image = new FakeImage(mr);
                    var set = new FakeStructureSet();
                    var prostate = set.AddStructure("ORGAN", "Prostate");
                    var band = set.AddStructure("CONTROL", "band");
                    using (var m = result.GetVolume(ResultMap.Mask, 0))
                    using (var u = result.GetVolume(ResultMap.Uncertainty, 0))
                    using (var b = Volume.FromBuffer(u.Dims, u.Spacing, u.Origin, u.Direction,
                        u.GetData().Select(x => x >= 0.1 ? 1f : 0f).ToArray()))
                    {
                        ImageVolumes.WriteMask(m, prostate);
                        ImageVolumes.WriteMask(b, band);
                    }

                    var ours = Workflows.CompareStructures(prostate, band, image);

                    string rt = Path.Combine(outDir, "rtstruct.dcm");
                    string json = RunHalo("compare", "--json", "--series", SampleSeries,
                        "--reference", rt + "#Prostate", "--test", rt + "#U>=0.1 Prostate");
                    Assert.AreEqual(JsonNumber(json, "dice"), ours.Dice, 1e-12);
                    Assert.AreEqual(JsonNumber(json, "surface_dice"), ours.SurfaceDice, 1e-12);
                    Assert.AreEqual(JsonNumber(json, "hausdorff"), ours.Hausdorff, 1e-9);
                    Assert.AreEqual(JsonNumber(json, "asd_symmetric"), ours.AsdSymmetric, 1e-9);
                    Assert.AreEqual(JsonNumber(json, "apl_total_mm"), ours.AplTotalMm, 1e-9);
                    Assert.AreEqual(JsonNumber(json, "added_voxels"), (double)ours.AddedVoxels);
                }
            }
            finally
            {
                if (Directory.Exists(outDir))
                {
                    Directory.Delete(outDir, true);
                }
            }
        }

        [Test]
        public void A_missing_model_folder_raises_the_native_message()
        {
            var ex = Assert.Throws<HaloException>(() => Model.Open("/nonexistent/model"));

            Assert.AreEqual(HaloStatus.Model, ex.Status);
            StringAssert.Contains("/nonexistent/model", ex.Message);
        }

        [Test]
        public void Masks_on_different_grids_are_refused()
        {
            using (var a = Volume.ReadSeries(SampleSeries))
            using (var b = Volume.ReadSeries(TestData.CorpusGood))
            {
                var ex = Assert.Throws<HaloException>(() => Metrics.Compare(a, b));

                Assert.AreEqual(HaloStatus.InvalidArgument, ex.Status);
            }
        }

        [Test]
        public void The_edit_histogram_counts_every_edited_voxel_once()
        {
            using (var mr = Volume.ReadSeries(SampleSeries))
            using (var model = Model.Open(SampleModel, "cpu", 1))
            using (var result = model.Run(mr))
            using (var prostate = result.GetVolume(ResultMap.Mask, 0))
            using (var rectum = result.GetVolume(ResultMap.Mask, 1))
            using (var u = result.GetVolume(ResultMap.Uncertainty, 0))
            {
                var c = Metrics.Compare(prostate, rectum);
                var h = Metrics.EditHistogram(prostate, rectum, u);

                Assert.AreEqual(c.AddedVoxels, h[0].Aggregate(0UL, (x, y) => x + y));
                Assert.AreEqual(c.RemovedVoxels, h[1].Aggregate(0UL, (x, y) => x + y));
            }
        }

        private static IStructureSet WithStructure(string id)
        {
            var set = new FakeStructureSet();
            set.AddStructure("ORGAN", id);
            return set;
        }

        private static string RunHalo(params string[] args)
        {
            var info = new ProcessStartInfo(Path.Combine(TestData.Repo, "target", "release", "halo"),
                string.Join(" ", args.Select(a => "\"" + a + "\"")))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using (var p = Process.Start(info))
            {
                string stdout = p.StandardOutput.ReadToEnd();
                string stderr = p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.AreEqual(0, p.ExitCode, stderr);
                return stdout;
            }
        }

        /// <summary>The number after "key": in a flat JSON object.</summary>
        private static double JsonNumber(string json, string key)
        {
            int i = json.IndexOf("\"" + key + "\":", StringComparison.Ordinal);
            Assert.GreaterOrEqual(i, 0, key + " missing in " + json);
            int start = i + key.Length + 3;
            int end = json.IndexOfAny(new[] { ',', '\n', '}' }, start);
            return double.Parse(json.Substring(start, end - start).Trim(),
                System.Globalization.CultureInfo.InvariantCulture);
        }

        private sealed class Recorder : IProgress<double>
        {
            private readonly System.Collections.Generic.List<double> values;

            public Recorder(System.Collections.Generic.List<double> values)
            {
                this.values = values;
            }

            public void Report(double value)
            {
                values.Add(value);
            }
        }

        private sealed class CancelAt : IProgress<double>
        {
            private readonly CancellationTokenSource cts;
            private readonly double at;

            public CancelAt(CancellationTokenSource cts, double at)
            {
                this.cts = cts;
                this.at = at;
            }

            public void Report(double value)
            {
                if (value >= at)
                {
                    cts.Cancel();
                }
            }
        }
    }
}
