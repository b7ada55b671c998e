// An Eclipse (ESAPI) plug-in script: segments the open image with a halo
// model, adds the structures and uncertainty bands to the open structure
// set, and writes the PT uncertainty series for import. Compiled only where
// the ESAPI assemblies exist (see samples/esapi/README.md); the adapters
// below map the real VMS.TPS types onto halo's ESAPI-shaped interfaces.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Windows.Forms;
using Halo;
using Halo.Esapi;
using VMS.TPS.Common.Model.API;
using VMS.TPS.Common.Model.Types;

[assembly: ESAPIScript(IsWriteable = true)]

namespace VMS.TPS
{
    /// <summary>The script Eclipse runs (Tools > Scripts).</summary>
    public class Script
    {
        /// <summary>Model folder beside the script; change to your model.</summary>
        private const string ModelFolderName = "model";

        /// <summary>Uncertainty band threshold (0 for none).</summary>
        private const double Band = 0.1;

        public void Execute(ScriptContext context)
        {
            if (context.Image == null || context.StructureSet == null)
            {
                MessageBox.Show("Open an image with a structure set first.", "halo");
                return;
            }
            string here = Path.GetDirectoryName(typeof(Script).Assembly.Location);
            var options = new SegmentOptions
            {
                ModelFolder = Path.Combine(here, ModelFolderName),
                Band = Band,
            };
            // The PT series needs the image's DICOM files on disk: export the
            // series to this folder first (or leave it absent to skip the PT).
            string exported = Path.Combine(here, "export", context.Image.Series.Id);
            if (Directory.Exists(exported))
            {
                options.SeriesFolder = exported;
                options.PtFolder = Path.Combine(here, "uncertainty-" + DateTime.Now.ToString("yyyyMMdd-HHmmss"));
            }

            context.Patient.BeginModifications();
            var outcome = Workflows.SegmentWithUncertainty(
                new EsapiImage(context.Image), new EsapiStructureSet(context.StructureSet), options);

            var lines = outcome.Structures.Zip(outcome.Summaries, (s, m) =>
                string.Format("{0}: {1:F1} cm3, {2:F1} cm3 with uncertainty >= 0.1", s.Id, m.VolumeCm3, m.UncertainVolumeCm3));
            MessageBox.Show(string.Join("\n", lines) +
                (options.PtFolder != null ? "\n\nPT uncertainty series: " + options.PtFolder : ""), "halo");
        }
    }

    internal sealed class EsapiImage : IImage
    {
        private readonly Image image;

        public EsapiImage(Image image)
        {
            this.image = image;
        }

        public string Id { get { return image.Id; } }
        public int XSize { get { return image.XSize; } }
        public int YSize { get { return image.YSize; } }
        public int ZSize { get { return image.ZSize; } }
        public double XRes { get { return image.XRes; } }
        public double YRes { get { return image.YRes; } }
        public double ZRes { get { return image.ZRes; } }
        public Halo.Esapi.VVector Origin { get { return Convert(image.Origin); } }
        public Halo.Esapi.VVector XDirection { get { return Convert(image.XDirection); } }
        public Halo.Esapi.VVector YDirection { get { return Convert(image.YDirection); } }
        public Halo.Esapi.VVector ZDirection { get { return Convert(image.ZDirection); } }
        public string FOR { get { return image.FOR; } }

        public void GetVoxels(int planeIndex, int[,] buffer)
        {
            image.GetVoxels(planeIndex, buffer);
        }

        public double VoxelToDisplayValue(int voxelValue)
        {
            return image.VoxelToDisplayValue(voxelValue);
        }

        internal static Halo.Esapi.VVector Convert(VMS.TPS.Common.Model.Types.VVector v)
        {
            return new Halo.Esapi.VVector(v.x, v.y, v.z);
        }
    }

    internal sealed class EsapiStructure : IStructure
    {
        internal readonly Structure Structure;

        public EsapiStructure(Structure structure)
        {
            Structure = structure;
        }

        public string Id { get { return Structure.Id; } }
        public string DicomType { get { return Structure.DicomType; } }
        public bool IsEmpty { get { return Structure.IsEmpty; } }

        public void AddContourOnImagePlane(Halo.Esapi.VVector[] contour, int z)
        {
            Structure.AddContourOnImagePlane(Convert(contour), z);
        }

        public void SubtractContourOnImagePlane(Halo.Esapi.VVector[] contour, int z)
        {
            Structure.SubtractContourOnImagePlane(Convert(contour), z);
        }

        public void ClearAllContoursOnImagePlane(int z)
        {
            Structure.ClearAllContoursOnImagePlane(z);
        }

        public Halo.Esapi.VVector[][] GetContoursOnImagePlane(int z)
        {
            return Structure.GetContoursOnImagePlane(z)
                .Select(c => c.Select(EsapiImage.Convert).ToArray()).ToArray();
        }

        private static VMS.TPS.Common.Model.Types.VVector[] Convert(Halo.Esapi.VVector[] contour)
        {
            return contour.Select(v => new VMS.TPS.Common.Model.Types.VVector(v.x, v.y, v.z)).ToArray();
        }
    }

    internal sealed class EsapiStructureSet : IStructureSet
    {
        private readonly StructureSet set;

        public EsapiStructureSet(StructureSet set)
        {
            this.set = set;
        }

        public IEnumerable<IStructure> Structures
        {
            get { return set.Structures.Select(s => (IStructure)new EsapiStructure(s)); }
        }

        public bool CanAddStructure(string dicomType, string id)
        {
            return set.CanAddStructure(dicomType, id);
        }

        public IStructure AddStructure(string dicomType, string id)
        {
            return new EsapiStructure(set.AddStructure(dicomType, id));
        }
    }
}
