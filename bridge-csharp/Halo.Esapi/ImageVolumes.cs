// Conversions between ESAPI-shaped images and structures and halo volumes.
using System;
using System.Collections.Generic;

namespace Halo.Esapi
{
    /// <summary>Reads images and structures into halo volumes and back.</summary>
    public static class ImageVolumes
    {
        /// <summary>
        /// Reads the image plane by plane into a volume of display values on
        /// the image's grid (origin, resolution and directions as the image has them).
        /// </summary>
        public static Volume ToVolume(IImage image)
        {
            if (image == null)
            {
                throw new ArgumentNullException("image");
            }
            int nx = image.XSize, ny = image.YSize, nz = image.ZSize;
            var data = new float[(long)nx * ny * nz];
            var plane = new int[nx, ny];
            for (int z = 0; z < nz; z++)
            {
                image.GetVoxels(z, plane);
                long offset = (long)z * nx * ny;
                for (int y = 0; y < ny; y++)
                {
                    for (int x = 0; x < nx; x++)
                    {
                        data[offset + (long)y * nx + x] = (float)image.VoxelToDisplayValue(plane[x, y]);
                    }
                }
            }
            return Volume.FromBuffer(
                new[] { nx, ny, nz },
                new[] { image.XRes, image.YRes, image.ZRes },
                image.Origin.ToArray(),
                Direction(image),
                data);
        }

        /// <summary>
        /// Replaces the contours of <paramref name="structure"/> with those of the
        /// mask (voxels above 0.5), plane by plane: outer boundaries are added and
        /// holes subtracted. The mask must lie on the image's grid.
        /// </summary>
        public static void WriteMask(Volume mask, IStructure structure)
        {
            if (mask == null || structure == null)
            {
                throw new ArgumentNullException(mask == null ? "mask" : "structure");
            }
            double[] direction = mask.Direction;
            var normal = new[] { direction[2], direction[5], direction[8] };
            int nz = mask.Dims[2];
            for (int z = 0; z < nz; z++)
            {
                structure.ClearAllContoursOnImagePlane(z);
                var polygons = new List<double[]>(mask.SlicePolygons(z));
                // Largest first: a polygon can only contain smaller ones, so
                // outer boundaries precede their holes and holes their islands.
                polygons.Sort((a, b) => Math.Abs(Area(b, normal)).CompareTo(Math.Abs(Area(a, normal))));
                foreach (var polygon in polygons)
                {
                    var contour = ToVectors(polygon);
                    if (Area(polygon, normal) > 0)
                    {
                        structure.SubtractContourOnImagePlane(contour, z);
                    }
                    else
                    {
                        structure.AddContourOnImagePlane(contour, z);
                    }
                }
            }
        }

        /// <summary>
        /// Rasterises a structure's contours onto the grid of <paramref name="like"/>
        /// at voxel centres (contours of a plane combined by XOR).
        /// </summary>
        public static Volume ToMask(IStructure structure, Volume like)
        {
            if (structure == null || like == null)
            {
                throw new ArgumentNullException(structure == null ? "structure" : "like");
            }
            var polygons = new List<double[]>();
            var slices = new List<int>();
            int nz = like.Dims[2];
            for (int z = 0; z < nz; z++)
            {
                foreach (var contour in structure.GetContoursOnImagePlane(z))
                {
                    var flat = new double[contour.Length * 3];
                    for (int i = 0; i < contour.Length; i++)
                    {
                        flat[3 * i] = contour[i].x;
                        flat[3 * i + 1] = contour[i].y;
                        flat[3 * i + 2] = contour[i].z;
                    }
                    polygons.Add(flat);
                    slices.Add(z);
                }
            }
            return Volume.FromPolygons(like, polygons, slices);
        }

        /// <summary>A volume of zeros on the image's grid (its geometry only).</summary>
        public static Volume EmptyVolume(IImage image)
        {
            if (image == null)
            {
                throw new ArgumentNullException("image");
            }
            return Volume.FromBuffer(
                new[] { image.XSize, image.YSize, image.ZSize },
                new[] { image.XRes, image.YRes, image.ZRes },
                image.Origin.ToArray(),
                Direction(image),
                new float[(long)image.XSize * image.YSize * image.ZSize]);
        }

        internal static double[] Direction(IImage image)
        {
            VVector x = image.XDirection, y = image.YDirection, z = image.ZDirection;
            // Row by row; the columns are the x, y and z axes.
            return new[] { x.x, y.x, z.x, x.y, y.y, z.y, x.z, y.z, z.z };
        }

        /// <summary>
        /// Twice the signed area (mm2) seen from the tip of the slice normal:
        /// halo traces outer boundaries clockwise (negative) and holes
        /// counter-clockwise (positive).
        /// </summary>
        private static double Area(double[] polygon, double[] normal)
        {
            int n = polygon.Length / 3;
            double ax = 0, ay = 0, az = 0;
            for (int i = 0; i < n; i++)
            {
                int j = (i + 1) % n;
                double x1 = polygon[3 * i], y1 = polygon[3 * i + 1], z1 = polygon[3 * i + 2];
                double x2 = polygon[3 * j], y2 = polygon[3 * j + 1], z2 = polygon[3 * j + 2];
                ax += y1 * z2 - z1 * y2;
                ay += z1 * x2 - x1 * z2;
                az += x1 * y2 - y1 * x2;
            }
            return ax * normal[0] + ay * normal[1] + az * normal[2];
        }

        private static VVector[] ToVectors(double[] polygon)
        {
            var v = new VVector[polygon.Length / 3];
            for (int i = 0; i < v.Length; i++)
            {
                v[i] = new VVector(polygon[3 * i], polygon[3 * i + 1], polygon[3 * i + 2]);
            }
            return v;
        }
    }
}
