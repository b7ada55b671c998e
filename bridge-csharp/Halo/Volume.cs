// Volumes: float voxel arrays ([z][y][x], x fastest) on a grid in DICOM
// patient coordinates (LPS, mm), owned by the native library.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Halo
{
    /// <summary>An immutable volume held by the native library.</summary>
    public sealed class Volume : IDisposable
    {
        internal readonly VolumeHandle Handle;

        internal Volume(VolumeHandle handle)
        {
            Handle = handle;
        }

        /// <summary>
        /// Copies <paramref name="data"/> ([z][y][x], x fastest) into a new volume.
        /// </summary>
        /// <param name="dims">Voxels along x, y, z.</param>
        /// <param name="spacing">Spacing in mm along x, y, z.</param>
        /// <param name="origin">LPS position (mm) of voxel [0][0][0].</param>
        /// <param name="direction">Nine numbers, row by row; columns are the axes.</param>
        /// <param name="data">dims[0] * dims[1] * dims[2] values.</param>
        public static Volume FromBuffer(
            int[] dims, double[] spacing, double[] origin, double[] direction, float[] data)
        {
            if (dims == null || dims.Length != 3)
            {
                throw new ArgumentException("dims must hold 3 values", "dims");
            }
            Require(spacing, 3, "spacing");
            Require(origin, 3, "origin");
            Require(direction, 9, "direction");
            if (data == null)
            {
                throw new ArgumentNullException("data");
            }
            var udims = new UIntPtr[3];
            for (int i = 0; i < 3; i++)
            {
                if (dims[i] <= 0)
                {
                    throw new ArgumentException("dims[" + i + "] is " + dims[i], "dims");
                }
                udims[i] = (UIntPtr)dims[i];
            }
            VolumeHandle handle;
            Status.Check(Native.halo_volume_new(
                udims, spacing, origin, direction, data, (UIntPtr)data.Length, out handle));
            return new Volume(handle);
        }

        /// <summary>
        /// Reads a DICOM image series from a folder; <paramref name="selector"/>
        /// is a SeriesInstanceUID, SeriesNumber or SeriesDescription, or null
        /// for the folder's only series.
        /// </summary>
        public static Volume ReadSeries(string folder, string selector = null)
        {
            if (folder == null)
            {
                throw new ArgumentNullException("folder");
            }
            VolumeHandle handle;
            Status.Check(Native.halo_series_read(
                Status.Utf8(folder), Status.Utf8(selector), out handle));
            return new Volume(handle);
        }

        /// <summary>
        /// Fills closed polygons (x, y, z triples in patient mm, one polygon per
        /// entry, on the grid slice given in <paramref name="slices"/>) onto the
        /// grid of <paramref name="like"/> at voxel centres, XOR-ing those of a
        /// slice; 1 inside, 0 outside.
        /// </summary>
        public static Volume FromPolygons(Volume like, IList<double[]> polygons, IList<int> slices)
        {
            if (like == null || polygons == null || slices == null)
            {
                throw new ArgumentNullException(like == null ? "like" : "polygons");
            }
            if (polygons.Count != slices.Count)
            {
                throw new ArgumentException("one slice index per polygon is needed", "slices");
            }
            int total = 0;
            foreach (var p in polygons)
            {
                total += p.Length;
            }
            var points = new double[total];
            var counts = new UIntPtr[polygons.Count];
            var planes = new UIntPtr[polygons.Count];
            int k = 0;
            for (int i = 0; i < polygons.Count; i++)
            {
                if (slices[i] < 0)
                {
                    throw new ArgumentOutOfRangeException("slices", "slice " + slices[i]);
                }
                Array.Copy(polygons[i], 0, points, k, polygons[i].Length);
                k += polygons[i].Length;
                counts[i] = (UIntPtr)(polygons[i].Length / 3);
                planes[i] = (UIntPtr)slices[i];
            }
            VolumeHandle handle;
            Status.Check(Native.halo_mask_from_polygons(like.Handle, points, (UIntPtr)points.Length,
                counts, planes, (UIntPtr)counts.Length, out handle));
            return new Volume(handle);
        }

        /// <summary>
        /// The closed polygons of the mask (voxels above 0.5) on slice
        /// <paramref name="z"/>, each as x, y, z triples in patient mm, traced on
        /// voxel edges; holes are separate polygons running the other way round.
        /// </summary>
        public IList<double[]> SlicePolygons(int z)
        {
            if (z < 0)
            {
                throw new ArgumentOutOfRangeException("z");
            }
            UIntPtr nPolygons, nPoints;
            var status = Native.halo_mask_slice_polygons(Handle, (UIntPtr)z, null, UIntPtr.Zero,
                null, UIntPtr.Zero, out nPolygons, out nPoints);
            var result = new List<double[]>();
            if (status == HaloStatus.Ok)
            {
                return result;
            }
            if (status != HaloStatus.BufferTooSmall)
            {
                Status.Check(status);
            }
            var points = new double[3 * (int)nPoints.ToUInt64()];
            var counts = new UIntPtr[(int)nPolygons.ToUInt64()];
            Status.Check(Native.halo_mask_slice_polygons(Handle, (UIntPtr)z, points,
                (UIntPtr)points.Length, counts, (UIntPtr)counts.Length, out nPolygons, out nPoints));
            int k = 0;
            foreach (var c in counts)
            {
                int n = 3 * (int)c.ToUInt64();
                var polygon = new double[n];
                Array.Copy(points, k, polygon, 0, n);
                k += n;
                result.Add(polygon);
            }
            return result;
        }

        /// <summary>
        /// Rasterises the ROI <paramref name="roi"/> (name or number) of an
        /// RTSTRUCT file onto the grid of <paramref name="image"/>.
        /// </summary>
        public static Volume ReadRoi(string rtstruct, Volume image, string roi)
        {
            if (rtstruct == null || image == null || roi == null)
            {
                throw new ArgumentNullException(rtstruct == null ? "rtstruct" : image == null ? "image" : "roi");
            }
            VolumeHandle handle;
            Status.Check(Native.halo_rtstruct_read_roi(
                Status.Utf8(rtstruct), image.Handle, Status.Utf8(roi), out handle));
            return new Volume(handle);
        }

        /// <summary>Voxels along x, y, z.</summary>
        public int[] Dims
        {
            get
            {
                var d = new UIntPtr[3];
                Status.Check(Native.halo_volume_geometry(Handle, d, null, null, null));
                return new[] { (int)d[0].ToUInt64(), (int)d[1].ToUInt64(), (int)d[2].ToUInt64() };
            }
        }

        /// <summary>Spacing in mm along x, y, z.</summary>
        public double[] Spacing
        {
            get { return Geometry(3, 1); }
        }

        /// <summary>LPS position (mm) of voxel [0][0][0].</summary>
        public double[] Origin
        {
            get { return Geometry(3, 2); }
        }

        /// <summary>Direction cosines, nine numbers in SimpleITK's order.</summary>
        public double[] Direction
        {
            get { return Geometry(9, 3); }
        }

        /// <summary>Number of voxels.</summary>
        public int Count
        {
            get
            {
                var d = Dims;
                return d[0] * d[1] * d[2];
            }
        }

        /// <summary>A copy of the voxel values, [z][y][x] with x fastest.</summary>
        public float[] GetData()
        {
            var data = new float[Count];
            Status.Check(Native.halo_volume_copy_data(Handle, data, (UIntPtr)data.Length));
            return data;
        }

        /// <summary>Releases the native volume.</summary>
        public void Dispose()
        {
            Handle.Dispose();
        }

        private double[] Geometry(int length, int which)
        {
            var v = new double[length];
            Status.Check(Native.halo_volume_geometry(
                Handle, null, which == 1 ? v : null, which == 2 ? v : null, which == 3 ? v : null));
            return v;
        }

        private static void Require(double[] values, int length, string name)
        {
            if (values == null || values.Length != length)
            {
                throw new ArgumentException(name + " must hold " + length + " values", name);
            }
        }

        /// <summary>Owns a HaloVolume pointer.</summary>
        internal sealed class VolumeHandle : SafeHandle
        {
            public VolumeHandle()
                : base(IntPtr.Zero, true)
            {
            }

            public override bool IsInvalid
            {
                get { return handle == IntPtr.Zero; }
            }

            protected override bool ReleaseHandle()
            {
                return Native.halo_volume_free(handle) == HaloStatus.Ok;
            }
        }

        internal static class Native
        {
            static Native()
            {
                NativeLibrary.EnsureLoaded();
            }

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_volume_new(
                UIntPtr[] dims, double[] spacing, double[] origin, double[] direction,
                float[] data, UIntPtr len, out VolumeHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_volume_free(IntPtr volume);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_volume_geometry(
                VolumeHandle volume, UIntPtr[] dims, double[] spacing, double[] origin,
                double[] direction);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_volume_copy_data(
                VolumeHandle volume, float[] buf, UIntPtr len);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_mask_slice_polygons(
                VolumeHandle mask, UIntPtr slice, double[] points, UIntPtr points_len,
                UIntPtr[] counts, UIntPtr counts_len, out UIntPtr n_polygons, out UIntPtr n_points);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_mask_from_polygons(
                VolumeHandle like, double[] points, UIntPtr points_len, UIntPtr[] counts,
                UIntPtr[] slices, UIntPtr n_polygons, out VolumeHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_rtstruct_read_roi(
                byte[] rtstruct, VolumeHandle image, byte[] roi, out VolumeHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_series_read(
                byte[] folder, byte[] selector, out VolumeHandle out_);
        }
    }
}
