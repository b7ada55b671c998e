// In-memory stand-ins for ESAPI's Image, Structure and StructureSet, built
// from halo volumes. The fake structure rasterises its own contours with an
// even-odd test at voxel centres, independently of halo, so that tests can
// compare what a workflow wrote with halo's masks voxel for voxel.
using System;
using System.Collections.Generic;
using System.Linq;
using Halo;
using Halo.Esapi;

namespace Halo.Tests
{
    /// <summary>An image whose stored voxels are (display - Intercept) / Slope.</summary>
    internal sealed class FakeImage : IImage
    {
        internal const double Slope = 0.5;
        internal const double Intercept = -100.0;
        private readonly int[][,] planes;

        internal FakeImage(Volume volume, string forUid = "1.2.3.4")
        {
            var d = volume.Dims;
            XSize = d[0];
            YSize = d[1];
            ZSize = d[2];
            var s = volume.Spacing;
            XRes = s[0];
            YRes = s[1];
            ZRes = s[2];
            var o = volume.Origin;
            Origin = new VVector(o[0], o[1], o[2]);
            var r = volume.Direction;
            XDirection = new VVector(r[0], r[3], r[6]);
            YDirection = new VVector(r[1], r[4], r[7]);
            ZDirection = new VVector(r[2], r[5], r[8]);
            FOR = forUid;
            var data = volume.GetData();
            planes = new int[ZSize][,];
            for (int z = 0; z < ZSize; z++)
            {
                planes[z] = new int[XSize, YSize];
                for (int y = 0; y < YSize; y++)
                {
                    for (int x = 0; x < XSize; x++)
                    {
                        double display = data[((long)z * YSize + y) * XSize + x];
                        planes[z][x, y] = (int)Math.Round((display - Intercept) / Slope);
                    }
                }
            }
        }

        public string Id { get { return "MR"; } }
        public int XSize { get; private set; }
        public int YSize { get; private set; }
        public int ZSize { get; private set; }
        public double XRes { get; private set; }
        public double YRes { get; private set; }
        public double ZRes { get; private set; }
        public VVector Origin { get; private set; }
        public VVector XDirection { get; private set; }
        public VVector YDirection { get; private set; }
        public VVector ZDirection { get; private set; }
        public string FOR { get; private set; }

        public void GetVoxels(int planeIndex, int[,] buffer)
        {
            Array.Copy(planes[planeIndex], buffer, buffer.Length);
        }

        public double VoxelToDisplayValue(int voxelValue)
        {
            return voxelValue * Slope + Intercept;
        }
    }

    internal sealed class FakeStructure : IStructure
    {
        private readonly Dictionary<int, List<KeyValuePair<VVector[], bool>>> planes =
            new Dictionary<int, List<KeyValuePair<VVector[], bool>>>();

        internal FakeStructure(string dicomType, string id)
        {
            DicomType = dicomType;
            Id = id;
        }

        public string Id { get; private set; }
        public string DicomType { get; private set; }
        public bool IsEmpty { get { return planes.Values.All(p => p.Count == 0); } }
        internal int Added { get; private set; }
        internal int Subtracted { get; private set; }

        public void AddContourOnImagePlane(VVector[] contour, int z)
        {
            Plane(z).Add(new KeyValuePair<VVector[], bool>(contour, true));
            Added++;
        }

        public void SubtractContourOnImagePlane(VVector[] contour, int z)
        {
            Plane(z).Add(new KeyValuePair<VVector[], bool>(contour, false));
            Subtracted++;
        }

        public void ClearAllContoursOnImagePlane(int z)
        {
            planes.Remove(z);
        }

        public VVector[][] GetContoursOnImagePlane(int z)
        {
            List<KeyValuePair<VVector[], bool>> ops;
            return planes.TryGetValue(z, out ops) ? ops.Select(o => o.Key).ToArray() : new VVector[0][];
        }

        /// <summary>Applies the add/subtract operations at voxel centres of the image grid.</summary>
        internal byte[] Rasterize(IImage image)
        {
            var mask = new byte[(long)image.XSize * image.YSize * image.ZSize];
            foreach (var entry in planes)
            {
                int z = entry.Key;
                foreach (var op in entry.Value)
                {
                    var poly = op.Key.Select(p => ToIndex(image, p)).ToArray();
                    for (int y = 0; y < image.YSize; y++)
                    {
                        for (int x = 0; x < image.XSize; x++)
                        {
                            if (Inside(poly, x, y))
                            {
                                mask[((long)z * image.YSize + y) * image.XSize + x] = (byte)(op.Value ? 1 : 0);
                            }
                        }
                    }
                }
            }
            return mask;
        }

        private List<KeyValuePair<VVector[], bool>> Plane(int z)
        {
            List<KeyValuePair<VVector[], bool>> ops;
            if (!planes.TryGetValue(z, out ops))
            {
                ops = new List<KeyValuePair<VVector[], bool>>();
                planes[z] = ops;
            }
            return ops;
        }

        private static double[] ToIndex(IImage image, VVector p)
        {
            double dx = p.x - image.Origin.x, dy = p.y - image.Origin.y, dz = p.z - image.Origin.z;
            VVector a = image.XDirection, b = image.YDirection;
            return new[]
            {
                (dx * a.x + dy * a.y + dz * a.z) / image.XRes,
                (dx * b.x + dy * b.y + dz * b.z) / image.YRes,
            };
        }

        /// <summary>Even-odd ray test of the point (x, y) against a closed polygon.</summary>
        private static bool Inside(double[][] poly, double x, double y)
        {
            bool inside = false;
            for (int i = 0, j = poly.Length - 1; i < poly.Length; j = i++)
            {
                double xi = poly[i][0], yi = poly[i][1], xj = poly[j][0], yj = poly[j][1];
                if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi)
                {
                    inside = !inside;
                }
            }
            return inside;
        }
    }

    internal sealed class FakeStructureSet : IStructureSet
    {
        private readonly List<IStructure> structures = new List<IStructure>();

        public IEnumerable<IStructure> Structures { get { return structures; } }

        public bool CanAddStructure(string dicomType, string id)
        {
            return !string.IsNullOrEmpty(id) && id.Length <= 16 &&
                structures.All(s => !string.Equals(s.Id, id, StringComparison.OrdinalIgnoreCase));
        }

        public IStructure AddStructure(string dicomType, string id)
        {
            if (!CanAddStructure(dicomType, id))
            {
                throw new InvalidOperationException("cannot add structure " + id);
            }
            var s = new FakeStructure(dicomType, id);
            structures.Add(s);
            return s;
        }
    }
}
