// Compile-only stand-ins for the few ESAPI members samples/esapi uses, so
// that the test suite checks the plug-in sample compiles where the real
// assemblies are absent. Shapes follow Varian's published ESAPI reference;
// nothing here runs.
#pragma warning disable 1591
using System;
using System.Collections.Generic;

namespace VMS.TPS.Common.Model.Types
{
    public struct VVector
    {
        public VVector(double x, double y, double z)
        {
            this.x = x;
            this.y = y;
            this.z = z;
        }

        public double x;
        public double y;
        public double z;
    }
}

namespace VMS.TPS.Common.Model.API
{
    using VMS.TPS.Common.Model.Types;

    [AttributeUsage(AttributeTargets.Assembly)]
    public sealed class ESAPIScriptAttribute : Attribute
    {
        public bool IsWriteable { get; set; }
    }

    public class Series
    {
        public string Id { get { throw new NotSupportedException(); } }
    }

    public class Image
    {
        public string Id { get { throw new NotSupportedException(); } }
        public int XSize { get { throw new NotSupportedException(); } }
        public int YSize { get { throw new NotSupportedException(); } }
        public int ZSize { get { throw new NotSupportedException(); } }
        public double XRes { get { throw new NotSupportedException(); } }
        public double YRes { get { throw new NotSupportedException(); } }
        public double ZRes { get { throw new NotSupportedException(); } }
        public VVector Origin { get { throw new NotSupportedException(); } }
        public VVector XDirection { get { throw new NotSupportedException(); } }
        public VVector YDirection { get { throw new NotSupportedException(); } }
        public VVector ZDirection { get { throw new NotSupportedException(); } }
        public string FOR { get { throw new NotSupportedException(); } }
        public Series Series { get { throw new NotSupportedException(); } }
        public void GetVoxels(int planeIndex, int[,] buffer) { throw new NotSupportedException(); }
        public double VoxelToDisplayValue(int voxelValue) { throw new NotSupportedException(); }
    }

    public class Structure
    {
        public string Id { get { throw new NotSupportedException(); } }
        public string DicomType { get { throw new NotSupportedException(); } }
        public bool IsEmpty { get { throw new NotSupportedException(); } }
        public void AddContourOnImagePlane(VVector[] contour, int z) { throw new NotSupportedException(); }
        public void SubtractContourOnImagePlane(VVector[] contour, int z) { throw new NotSupportedException(); }
        public void ClearAllContoursOnImagePlane(int z) { throw new NotSupportedException(); }
        public VVector[][] GetContoursOnImagePlane(int z) { throw new NotSupportedException(); }
    }

    public class StructureSet
    {
        public IEnumerable<Structure> Structures { get { throw new NotSupportedException(); } }
        public bool CanAddStructure(string dicomType, string id) { throw new NotSupportedException(); }
        public Structure AddStructure(string dicomType, string id) { throw new NotSupportedException(); }
    }

    public class Patient
    {
        public void BeginModifications() { throw new NotSupportedException(); }
    }

    public class ScriptContext
    {
        public Image Image { get { throw new NotSupportedException(); } }
        public StructureSet StructureSet { get { throw new NotSupportedException(); } }
        public Patient Patient { get { throw new NotSupportedException(); } }
    }
}
