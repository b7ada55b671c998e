// The ESAPI-shaped adapters: images to volumes, masks to structures and back.
using System;
using System.IO;
using Halo;
using Halo.Esapi;
using NUnit.Framework;

namespace Halo.Tests
{
    [TestFixture]
    public class AdapterTests
    {
        private static Volume Ring(Volume like, out float[] data)
        {
            var d = like.Dims;
            data = new float[d[0] * d[1] * d[2]];
            for (int z = 1; z < d[2] - 1; z++)
            {
                for (int y = 0; y < d[1]; y++)
                {
                    for (int x = 0; x < d[0]; x++)
                    {
                        double r = Math.Sqrt(Math.Pow(x - d[0] / 2.0, 2) + Math.Pow(y - d[1] / 2.0, 2));
                        bool ring = r < d[0] / 3.0 && r > d[0] / 8.0;
                        bool island = r < d[0] / 16.0;
                        data[(z * d[1] + y) * d[0] + x] = ring || island ? 1f : 0f;
                    }
                }
            }
            return Volume.FromBuffer(d, like.Spacing, like.Origin, like.Direction, data);
        }

        [Test]
        public void An_image_read_plane_by_plane_equals_halos_own_reading_of_the_series()
        {
            string folder = TestData.Shared("data", "prostatex", "ProstateX-0000", "4.000000-t2tsetra-00702");
            using (var direct = Volume.ReadSeries(folder))
            using (var adapted = ImageVolumes.ToVolume(new FakeImage(direct)))
            {
                CollectionAssert.AreEqual(direct.Dims, adapted.Dims);
                CollectionAssert.AreEqual(direct.Origin, adapted.Origin);
                CollectionAssert.AreEqual(direct.Direction, adapted.Direction);
                CollectionAssert.AreEqual(direct.GetData(), adapted.GetData());
            }
        }

        [Test]
        public void A_mask_with_holes_becomes_added_and_subtracted_contours_that_rasterise_back_exactly()
        {
            string folder = TestData.Shared("data", "prostatex", "ProstateX-0000", "4.000000-t2tsetra-00702");
            using (var mr = Volume.ReadSeries(folder))
            {
                float[] data;
                using (var mask = Ring(mr, out data))
                {
                    var image = new FakeImage(mr);
                    var structure = new FakeStructure("ORGAN", "ring");

                    ImageVolumes.WriteMask(mask, structure);

                    Assert.Greater(structure.Subtracted, 0, "the ring's hole must be subtracted");
                    Assert.Greater(structure.Added, structure.Subtracted);
                    var raster = structure.Rasterize(image);
                    for (int i = 0; i < data.Length; i++)
                    {
                        Assert.AreEqual(data[i], raster[i], "voxel " + i);
                    }
                }
            }
        }

        [Test]
        public void A_structure_rasterised_by_halo_equals_the_mask_it_was_written_from()
        {
            using (var grid = Volume.ReadSeries(TestData.CorpusGood))
            {
                float[] data;
                using (var mask = Ring(grid, out data))
                {
                    var structure = new FakeStructure("ORGAN", "ring");
                    ImageVolumes.WriteMask(mask, structure);

                    using (var back = ImageVolumes.ToMask(structure, grid))
                    {
                        CollectionAssert.AreEqual(data, back.GetData());
                    }
                }
            }
        }

        [Test]
        public void An_empty_plane_gives_no_polygon()
        {
            using (var grid = Volume.ReadSeries(TestData.CorpusGood))
            {
                float[] data;
                using (var mask = Ring(grid, out data))
                {
                    Assert.AreEqual(0, mask.SlicePolygons(0).Count);
                    Assert.Greater(mask.SlicePolygons(1).Count, 0);
                }
            }
        }

        [Test]
        public void A_polygon_with_too_few_vertices_is_refused_by_halo()
        {
            using (var grid = Volume.ReadSeries(TestData.CorpusGood))
            {
                var ex = Assert.Throws<HaloException>(() => Volume.FromPolygons(
                    grid, new[] { new double[] { 0, 0, 0, 1, 1, 0 } }, new[] { 0 }));

                StringAssert.Contains("3 needed", ex.Message);
            }
        }
    }
}
