// Models and runs: open a model folder, run its ensemble on a volume with
// progress and cancellation, read labels, masks and uncertainty back.
using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace Halo
{
    /// <summary>Which map of a result <see cref="SegmentationResult.GetVolume"/> returns.</summary>
    public enum ResultMap
    {
        /// <summary>The ensemble label map (label values).</summary>
        Labels = 0,
        /// <summary>A structure's mask (1 inside, 0 outside).</summary>
        Mask = 1,
        /// <summary>A structure's mean probability.</summary>
        Probability = 2,
        /// <summary>A structure's uncertainty (standard deviation across members).</summary>
        Uncertainty = 3,
    }

    /// <summary>Per-structure summary of a run, for triage.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StructureSummary
    {
        /// <summary>The structure's label value.</summary>
        public ushort LabelValue;
        /// <summary>Volume in cm3.</summary>
        public double VolumeCm3;
        /// <summary>Volume with uncertainty at least 0.1, cm3.</summary>
        public double UncertainVolumeCm3;
        /// <summary>Mean uncertainty inside; NaN when empty.</summary>
        public double MeanUncertaintyInside;
        /// <summary>Mean uncertainty on the surface; NaN when empty.</summary>
        public double MeanUncertaintySurface;
        /// <summary>Largest uncertainty.</summary>
        public double MaxUncertainty;
    }

    /// <summary>An opened model folder (halo-model.json and its members).</summary>
    public sealed class Model : IDisposable
    {
        private readonly ModelHandle handle;

        private Model(ModelHandle handle)
        {
            this.handle = handle;
        }

        /// <summary>
        /// Opens a model folder, checking member checksums; <paramref name="device"/>
        /// is cpu, cuda or cuda:N; <paramref name="threads"/> 0 keeps the default.
        /// </summary>
        public static Model Open(string folder, string device = "cpu", int threads = 0)
        {
            if (folder == null)
            {
                throw new ArgumentNullException("folder");
            }
            if (threads < 0)
            {
                throw new ArgumentOutOfRangeException("threads");
            }
            ModelHandle h;
            Status.Check(Native.halo_model_open(
                Status.Utf8(folder), Status.Utf8(device), (uint)threads, out h));
            return new Model(h);
        }

        /// <summary>Names of the structures the model segments, in label order.</summary>
        public string[] StructureNames
        {
            get
            {
                UIntPtr count;
                Status.Check(Native.halo_model_structure_count(handle, out count));
                var names = new string[(int)count.ToUInt64()];
                for (int i = 0; i < names.Length; i++)
                {
                    UIntPtr needed;
                    Native.halo_model_structure_name(handle, (UIntPtr)i, null, UIntPtr.Zero, out needed);
                    var buf = new byte[(int)needed.ToUInt64()];
                    Status.Check(Native.halo_model_structure_name(
                        handle, (UIntPtr)i, buf, (UIntPtr)buf.Length, out needed));
                    names[i] = Encoding.UTF8.GetString(buf, 0, buf.Length - 1);
                }
                return names;
            }
        }

        /// <summary>
        /// Runs every member on <paramref name="image"/>. Progress reports the
        /// fraction done; cancelling throws <see cref="OperationCanceledException"/>
        /// and produces nothing.
        /// </summary>
        public SegmentationResult Run(
            Volume image,
            int ddof = 0,
            IProgress<double> progress = null,
            CancellationToken cancellation = default(CancellationToken))
        {
            if (image == null)
            {
                throw new ArgumentNullException("image");
            }
            Native.Progress callback = (user, member, members, done, tiles) =>
            {
                if (progress != null)
                {
                    double m = members.ToUInt64(), t = tiles.ToUInt64();
                    progress.Report((member.ToUInt64() + done.ToUInt64() / t) / m);
                }
                return !cancellation.IsCancellationRequested;
            };
            ResultHandle result;
            try
            {
                Status.Check(Native.halo_model_run(
                    handle, image.Handle, (uint)ddof, callback, IntPtr.Zero, out result));
            }
            finally
            {
                GC.KeepAlive(callback);
            }
            return new SegmentationResult(result);
        }

        /// <summary>Releases the native model.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        internal sealed class ModelHandle : SafeHandle
        {
            public ModelHandle()
                : base(IntPtr.Zero, true)
            {
            }

            public override bool IsInvalid
            {
                get { return handle == IntPtr.Zero; }
            }

            protected override bool ReleaseHandle()
            {
                return Native.halo_model_free(handle) == HaloStatus.Ok;
            }
        }

        internal sealed class ResultHandle : SafeHandle
        {
            public ResultHandle()
                : base(IntPtr.Zero, true)
            {
            }

            public override bool IsInvalid
            {
                get { return handle == IntPtr.Zero; }
            }

            protected override bool ReleaseHandle()
            {
                return Native.halo_result_free(handle) == HaloStatus.Ok;
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
            internal delegate bool Progress(
                IntPtr user, UIntPtr member, UIntPtr members, UIntPtr tiles_done, UIntPtr tiles);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_model_open(
                byte[] folder, byte[] device, uint threads, out ModelHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_model_free(IntPtr model);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_model_structure_count(
                ModelHandle model, out UIntPtr out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_model_structure_name(
                ModelHandle model, UIntPtr index, byte[] buf, UIntPtr len, out UIntPtr needed);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_model_run(
                ModelHandle model, Volume.VolumeHandle image, uint ddof, Progress progress,
                IntPtr user, out ResultHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_result_free(IntPtr result);
        }
    }

    /// <summary>The outcome of a run, on the input volume's grid.</summary>
    public sealed class SegmentationResult : IDisposable
    {
        private readonly Model.ResultHandle handle;

        internal SegmentationResult(Model.ResultHandle handle)
        {
            this.handle = handle;
        }

        /// <summary>One map of structure <paramref name="index"/> (ignored for Labels).</summary>
        public Volume GetVolume(ResultMap map, int index = 0)
        {
            if (index < 0)
            {
                throw new ArgumentOutOfRangeException("index");
            }
            Volume.VolumeHandle v;
            Status.Check(Native.halo_result_volume(handle, (int)map, (UIntPtr)index, out v));
            return new Volume(v);
        }

        /// <summary>The summary of structure <paramref name="index"/>.</summary>
        public StructureSummary GetSummary(int index)
        {
            if (index < 0)
            {
                throw new ArgumentOutOfRangeException("index");
            }
            StructureSummary s;
            Status.Check(Native.halo_result_summary(handle, (UIntPtr)index, out s));
            return s;
        }

        /// <summary>
        /// Writes rtstruct.dcm and one PT uncertainty series per structure into
        /// <paramref name="outFolder"/>, referencing the MR series in
        /// <paramref name="seriesFolder"/>; band 0 adds no band structures.
        /// </summary>
        public void WriteDicom(string seriesFolder, string outFolder, double band = 0.0,
            bool overwrite = false, string selector = null)
        {
            if (seriesFolder == null || outFolder == null)
            {
                throw new ArgumentNullException(seriesFolder == null ? "seriesFolder" : "outFolder");
            }
            Status.Check(Native.halo_result_write_dicom(handle, Status.Utf8(seriesFolder),
                Status.Utf8(selector), Status.Utf8(outFolder), band, overwrite));
        }

        /// <summary>Releases the native result.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        internal static class Native
        {
            static Native()
            {
                NativeLibrary.EnsureLoaded();
            }

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_result_volume(
                Model.ResultHandle result, int map, UIntPtr index, out Volume.VolumeHandle out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_result_summary(
                Model.ResultHandle result, UIntPtr index, out StructureSummary out_);

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_result_write_dicom(
                Model.ResultHandle result, byte[] series_folder, byte[] selector,
                byte[] out_folder, double band, [MarshalAs(UnmanagedType.I1)] bool overwrite);
        }
    }
}
