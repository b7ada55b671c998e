// Volumes and series through the bridge, against the native library.
using System;
using System.IO;
using Halo;
using NUnit.Framework;

namespace Halo.Tests
{
    [TestFixture]
    public class VolumeTests
    {
        private static readonly double[] Identity = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };

        [Test]
        public void A_volume_made_from_a_buffer_gives_back_its_values_and_geometry()
        {
            var data = new float[24];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = i * 0.25f;
            }

            using (var v = Volume.FromBuffer(
                new[] { 4, 3, 2 }, new[] { 0.5, 0.5, 3.0 }, new[] { -1.0, 2.0, 3.0 }, Identity, data))
            {
                CollectionAssert.AreEqual(new[] { 4, 3, 2 }, v.Dims);
                CollectionAssert.AreEqual(new[] { 0.5, 0.5, 3.0 }, v.Spacing);
                CollectionAssert.AreEqual(new[] { -1.0, 2.0, 3.0 }, v.Origin);
                CollectionAssert.AreEqual(Identity, v.Direction);
                CollectionAssert.AreEqual(data, v.GetData());
            }
        }

        [Test]
        public void A_buffer_of_the_wrong_length_raises_the_native_message()
        {
            var ex = Assert.Throws<HaloException>(() => Volume.FromBuffer(
                new[] { 4, 3, 2 }, new[] { 0.5, 0.5, 3.0 }, new double[3], Identity, new float[23]));

            Assert.AreEqual(HaloStatus.InvalidArgument, ex.Status);
            StringAssert.Contains("len is 23", ex.Message);
        }

        [Test]
        public void A_non_orthonormal_direction_is_refused()
        {
            var skew = new double[] { 1, 0.5, 0, 0, 1, 0, 0, 0, 1 };

            var ex = Assert.Throws<HaloException>(() => Volume.FromBuffer(
                new[] { 1, 1, 1 }, new[] { 1.0, 1.0, 1.0 }, new double[3], skew, new float[1]));

            StringAssert.Contains("not orthonormal", ex.Message);
        }

        [Test]
        public void A_dicom_series_is_read_with_its_geometry()
        {
            using (var v = Volume.ReadSeries(TestData.CorpusGood))
            {
                CollectionAssert.AreEqual(new[] { 8, 8, 4 }, v.Dims);
                Assert.AreEqual(2.0, v.Spacing[2], 1e-9);
                var data = v.GetData();
                Assert.AreEqual(363.0f, data[data.Length - 1]);
            }
        }

        [Test]
        public void A_missing_series_folder_raises_an_io_error_naming_it()
        {
            var ex = Assert.Throws<HaloException>(() => Volume.ReadSeries("/nonexistent/series"));

            Assert.AreEqual(HaloStatus.Io, ex.Status);
            StringAssert.Contains("/nonexistent/series", ex.Message);
        }

        [Test]
        public void A_series_with_a_missing_slice_raises_a_dicom_error()
        {
            var ex = Assert.Throws<HaloException>(
                () => Volume.ReadSeries(Path.Combine(TestData.Corpus, "missing-slice")));

            Assert.AreEqual(HaloStatus.Dicom, ex.Status);
            StringAssert.Contains("missing slice", ex.Message);
        }

        [Test]
        public void The_native_library_is_loaded_from_the_bridge_folder()
        {
            NativeLibrary.EnsureLoaded();

            string folder = Path.GetDirectoryName(typeof(Volume).Assembly.Location);
            Assert.AreEqual(Path.Combine(folder, "libhalo.so"), NativeLibrary.LoadedPath);
        }
    }
}
