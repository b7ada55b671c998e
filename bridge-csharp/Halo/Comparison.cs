// Comparing two masks: the metrics of `halo compare`, and the histogram of
// edited voxels by uncertainty.
using System;
using System.Runtime.InteropServices;

namespace Halo
{
    /// <summary>The boundary model of surface metrics.</summary>
    public enum Boundary
    {
        /// <summary>Area-weighted surface elements (DeepMind surface-distance); default.</summary>
        Surfel = 0,
        /// <summary>6-connected inner boundary voxels (MONAI, MedPy).</summary>
        Voxel = 1,
    }

    /// <summary>Every metric of one reference and test pair (mm, cm3).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Comparison
    {
        /// <summary>Dice coefficient.</summary>
        public double Dice;
        /// <summary>Surface Dice at the tolerance.</summary>
        public double SurfaceDice;
        /// <summary>Hausdorff distance.</summary>
        public double Hausdorff;
        /// <summary>95th percentile Hausdorff distance.</summary>
        public double Hausdorff95;
        /// <summary>99th percentile Hausdorff distance.</summary>
        public double Hausdorff99;
        /// <summary>Average distance, reference to test.</summary>
        public double AsdReferenceToTest;
        /// <summary>Average distance, test to reference.</summary>
        public double AsdTestToReference;
        /// <summary>Symmetric average surface distance.</summary>
        public double AsdSymmetric;
        /// <summary>Reference volume.</summary>
        public double VolumeReferenceCm3;
        /// <summary>Test volume.</summary>
        public double VolumeTestCm3;
        /// <summary>Reference minus test volume.</summary>
        public double VolumeDifferenceCm3;
        /// <summary>Test over reference volume.</summary>
        public double VolumeRatio;
        /// <summary>Sensitivity.</summary>
        public double Sensitivity;
        /// <summary>Specificity.</summary>
        public double Specificity;
        /// <summary>Added path length, total.</summary>
        public double AplTotalMm;
        /// <summary>Added path length per slice with contour.</summary>
        public double AplMeanMm;
        /// <summary>Voxels in the reference only.</summary>
        public ulong AddedVoxels;
        /// <summary>Voxels in the test only.</summary>
        public ulong RemovedVoxels;
        /// <summary>The boundary model used.</summary>
        public Boundary Boundary;
        /// <summary>The tolerance used, mm.</summary>
        public double ToleranceMm;
    }

    /// <summary>Mask comparison.</summary>
    public static class Metrics
    {
        /// <summary>
        /// Compares <paramref name="reference"/> (the edited contour) with
        /// <paramref name="test"/> (the automatic one); both on one grid.
        /// </summary>
        public static Comparison Compare(Volume reference, Volume test, double toleranceMm = 1.0,
            Boundary boundary = Boundary.Surfel)
        {
            if (reference == null || test == null)
            {
                throw new ArgumentNullException(reference == null ? "reference" : "test");
            }
            Comparison c;
            Status.Check(Native.halo_compare(reference.Handle, test.Handle, toleranceMm, boundary, out c));
            return c;
        }

        /// <summary>
        /// Edited voxels per uncertainty bin: [0] added, [1] removed, each of
        /// <paramref name="bins"/> counts of width <paramref name="width"/>.
        /// </summary>
        public static ulong[][] EditHistogram(Volume reference, Volume test, Volume uncertainty,
            double width = 0.1, int bins = 5)
        {
            if (reference == null || test == null || uncertainty == null)
            {
                throw new ArgumentNullException("reference, test and uncertainty are required");
            }
            if (bins < 1)
            {
                throw new ArgumentOutOfRangeException("bins");
            }
            var added = new ulong[bins];
            var removed = new ulong[bins];
            Status.Check(Native.halo_edit_histogram(reference.Handle, test.Handle, uncertainty.Handle,
                width, (UIntPtr)bins, added, removed));
            return new[] { added, removed };
        }

        internal static class Native
        {
            static Native()
            {
                NativeLibrary.EnsureLoaded();
            }

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_compare(
                Volume.VolumeHandle reference, Volume.VolumeHandle test, double tolerance_mm,
                Boundary boundary_model, out Comparison out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_edit_histogram(
                Volume.VolumeHandle reference, Volume.VolumeHandle test,
                Volume.VolumeHandle uncertainty, double width, UIntPtr bins, ulong[] added,
                ulong[] removed);
        }
    }
}
