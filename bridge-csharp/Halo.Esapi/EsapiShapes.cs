// Interfaces shaped like the Eclipse Scripting API (ESAPI) types that the
// workflows need. A plug-in adapts the real VMS.TPS.Common.Model.API types
// to them (samples/esapi); the tests use in-memory fakes. Coordinates are
// DICOM patient coordinates (LPS) in mm, as in ESAPI.
using System.Collections.Generic;

namespace Halo.Esapi
{
    /// <summary>A point or direction in patient coordinates (mm), like ESAPI's VVector.</summary>
    public struct VVector
    {
        /// <summary>Creates a vector.</summary>
        public VVector(double x, double y, double z)
        {
            this.x = x;
            this.y = y;
            this.z = z;
        }

        /// <summary>Component along patient x (towards the patient's left).</summary>
        public double x;

        /// <summary>Component along patient y (towards posterior).</summary>
        public double y;

        /// <summary>Component along patient z (towards superior).</summary>
        public double z;

        /// <summary>The components as an array [x, y, z].</summary>
        public double[] ToArray()
        {
            return new[] { x, y, z };
        }
    }

    /// <summary>A 3D image, like ESAPI's Image.</summary>
    public interface IImage
    {
        /// <summary>The image's identifier.</summary>
        string Id { get; }

        /// <summary>Voxels along a row.</summary>
        int XSize { get; }

        /// <summary>Rows per plane.</summary>
        int YSize { get; }

        /// <summary>Planes.</summary>
        int ZSize { get; }

        /// <summary>Voxel size along x (mm).</summary>
        double XRes { get; }

        /// <summary>Voxel size along y (mm).</summary>
        double YRes { get; }

        /// <summary>Plane spacing (mm).</summary>
        double ZRes { get; }

        /// <summary>Centre of the first voxel of the first plane (mm).</summary>
        VVector Origin { get; }

        /// <summary>Unit vector along a row.</summary>
        VVector XDirection { get; }

        /// <summary>Unit vector down a column.</summary>
        VVector YDirection { get; }

        /// <summary>Unit vector across planes.</summary>
        VVector ZDirection { get; }

        /// <summary>FrameOfReferenceUID of the image.</summary>
        string FOR { get; }

        /// <summary>Fills buffer[x, y] with the stored voxel values of plane z.</summary>
        void GetVoxels(int planeIndex, int[,] buffer);

        /// <summary>Converts a stored voxel value to its display value.</summary>
        double VoxelToDisplayValue(int voxelValue);
    }

    /// <summary>A structure, like ESAPI's Structure.</summary>
    public interface IStructure
    {
        /// <summary>The structure's identifier (at most 16 characters in Eclipse).</summary>
        string Id { get; }

        /// <summary>Its DICOM type (ORGAN, CTV, CONTROL, ...).</summary>
        string DicomType { get; }

        /// <summary>True when the structure has no contour.</summary>
        bool IsEmpty { get; }

        /// <summary>Adds the inside of a closed contour on plane z.</summary>
        void AddContourOnImagePlane(VVector[] contour, int z);

        /// <summary>Removes the inside of a closed contour from plane z.</summary>
        void SubtractContourOnImagePlane(VVector[] contour, int z);

        /// <summary>Removes every contour of plane z.</summary>
        void ClearAllContoursOnImagePlane(int z);

        /// <summary>The contours of plane z, combined by XOR.</summary>
        VVector[][] GetContoursOnImagePlane(int z);
    }

    /// <summary>A structure set, like ESAPI's StructureSet.</summary>
    public interface IStructureSet
    {
        /// <summary>The structures in the set.</summary>
        IEnumerable<IStructure> Structures { get; }

        /// <summary>Whether a structure of this type and identifier can be added.</summary>
        bool CanAddStructure(string dicomType, string id);

        /// <summary>Adds an empty structure.</summary>
        IStructure AddStructure(string dicomType, string id);
    }
}
