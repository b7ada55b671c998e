// The two workflows a planning-system script runs from the open patient:
// segment the image with uncertainty, and compare two structures.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;

namespace Halo.Esapi
{
    /// <summary>Options of <see cref="Workflows.SegmentWithUncertainty"/>.</summary>
    public sealed class SegmentOptions
    {
        /// <summary>The model folder (halo-model.json and members).</summary>
        public string ModelFolder { get; set; }

        /// <summary>cpu, cuda or cuda:N.</summary>
        public string Device { get; set; } = "cpu";

        /// <summary>Intra-op threads; 0 keeps the backend's default.</summary>
        public int Threads { get; set; }

        /// <summary>DICOM type of the new structures.</summary>
        public string DicomType { get; set; } = "ORGAN";

        /// <summary>Add a CONTROL structure for uncertainty at or above this; 0 for none.</summary>
        public double Band { get; set; }

        /// <summary>
        /// The image's DICOM series on disk; with <see cref="PtFolder"/> the
        /// uncertainty PT series (and an RTSTRUCT) are written there for import.
        /// </summary>
        public string SeriesFolder { get; set; }

        /// <summary>Folder to write the PT uncertainty series into; null for none.</summary>
        public string PtFolder { get; set; }

        /// <summary>Fraction done, 0 to 1.</summary>
        public IProgress<double> Progress { get; set; }

        /// <summary>Cancels the run; nothing is added then.</summary>
        public CancellationToken Cancellation { get; set; }
    }

    /// <summary>What <see cref="Workflows.SegmentWithUncertainty"/> created.</summary>
    public sealed class SegmentOutcome
    {
        /// <summary>One structure per model label, in label order.</summary>
        public IList<IStructure> Structures { get; } = new List<IStructure>();

        /// <summary>Uncertainty band structures (type CONTROL), when asked for.</summary>
        public IList<IStructure> Bands { get; } = new List<IStructure>();

        /// <summary>Per-structure summaries, in label order.</summary>
        public IList<StructureSummary> Summaries { get; } = new List<StructureSummary>();
    }

    /// <summary>Segmentation with uncertainty and structure comparison on ESAPI shapes.</summary>
    public static class Workflows
    {
        /// <summary>Eclipse's limit on structure identifiers.</summary>
        public const int MaxIdLength = 16;

        /// <summary>
        /// Reads the image plane by plane, runs the model's ensemble, and adds one
        /// structure per label (holes subtracted) plus optional band structures to
        /// the set; writes the PT uncertainty series when asked. The model runs
        /// before anything is added, so a failure or cancellation changes nothing.
        /// </summary>
        public static SegmentOutcome SegmentWithUncertainty(
            IImage image, IStructureSet structureSet, SegmentOptions options)
        {
            if (image == null || structureSet == null || options == null)
            {
                throw new ArgumentNullException(image == null ? "image" : structureSet == null ? "structureSet" : "options");
            }
            if (string.IsNullOrEmpty(options.ModelFolder))
            {
                throw new ArgumentException("ModelFolder is required", "options");
            }

            var outcome = new SegmentOutcome();
            using (var volume = ImageVolumes.ToVolume(image))
            using (var model = Model.Open(options.ModelFolder, options.Device, options.Threads))
            using (var result = model.Run(volume, 0, options.Progress, options.Cancellation))
            {
                string[] names = model.StructureNames;
                if (options.PtFolder != null)
                {
                    if (options.SeriesFolder == null)
                    {
                        throw new ArgumentException("PtFolder needs SeriesFolder, the image's DICOM series", "options");
                    }
                    result.WriteDicom(options.SeriesFolder, options.PtFolder, options.Band);
                }
                for (int i = 0; i < names.Length; i++)
                {
                    using (var mask = result.GetVolume(ResultMap.Mask, i))
                    {
                        var s = Add(structureSet, options.DicomType, names[i]);
                        ImageVolumes.WriteMask(mask, s);
                        outcome.Structures.Add(s);
                    }
                    outcome.Summaries.Add(result.GetSummary(i));
                    if (options.Band > 0)
                    {
                        using (var u = result.GetVolume(ResultMap.Uncertainty, i))
                        using (var band = Threshold(u, options.Band))
                        {
                            var s = Add(structureSet, "CONTROL", "U>=" + options.Band + " " + names[i]);
                            ImageVolumes.WriteMask(band, s);
                            outcome.Bands.Add(s);
                        }
                    }
                }
            }
            return outcome;
        }

        /// <summary>
        /// Compares two structures on the image's grid with the metrics of
        /// `halo compare`: <paramref name="reference"/> is the edited contour,
        /// <paramref name="test"/> the automatic one.
        /// </summary>
        public static Comparison CompareStructures(IStructure reference, IStructure test, IImage image,
            double toleranceMm = 1.0, Boundary boundary = Boundary.Surfel)
        {
            if (reference == null || test == null || image == null)
            {
                throw new ArgumentNullException(reference == null ? "reference" : test == null ? "test" : "image");
            }
            using (var grid = ImageVolumes.EmptyVolume(image))
            using (var r = ImageVolumes.ToMask(reference, grid))
            using (var t = ImageVolumes.ToMask(test, grid))
            {
                return Metrics.Compare(r, t, toleranceMm, boundary);
            }
        }

        /// <summary>
        /// An identifier of at most 16 characters, unique in the set: the name
        /// cut to fit, with a numeric suffix when taken.
        /// </summary>
        public static string UniqueId(IStructureSet structureSet, string name, string dicomType = "ORGAN")
        {
            string baseId = name.Length > MaxIdLength ? name.Substring(0, MaxIdLength) : name;
            if (structureSet.CanAddStructure(dicomType, baseId))
            {
                return baseId;
            }
            for (int k = 1; k < 100; k++)
            {
                string suffix = "_" + k;
                string id = (baseId.Length + suffix.Length > MaxIdLength
                    ? baseId.Substring(0, MaxIdLength - suffix.Length) : baseId) + suffix;
                if (structureSet.CanAddStructure(dicomType, id))
                {
                    return id;
                }
            }
            throw new InvalidOperationException("no free structure identifier for " + name);
        }

        private static IStructure Add(IStructureSet set, string dicomType, string name)
        {
            return set.AddStructure(dicomType, UniqueId(set, name, dicomType));
        }

        private static Volume Threshold(Volume v, double at)
        {
            float[] data = v.GetData().Select(x => x >= at ? 1f : 0f).ToArray();
            return Volume.FromBuffer(v.Dims, v.Spacing, v.Origin, v.Direction, data);
        }
    }
}
