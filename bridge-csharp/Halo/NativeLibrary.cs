// Loads the native halo library from this assembly's own folder before the
// first P/Invoke, so that a plug-in folder holding Halo.dll and the native
// library works without touching PATH or LD_LIBRARY_PATH.
using System;
using System.IO;
using System.Runtime.InteropServices;

namespace Halo
{
    /// <summary>Explicit loading of the native halo library.</summary>
    public static class NativeLibrary
    {
        /// <summary>The name every DllImport uses.</summary>
        public const string Name = "halo";

        private static readonly object Gate = new object();
        private static bool loaded;

        /// <summary>The file loaded, once <see cref="EnsureLoaded"/> ran.</summary>
        public static string LoadedPath { get; private set; }

        /// <summary>
        /// Loads halo.dll (Windows) or libhalo.so (Linux) from the folder of
        /// Halo.dll; on failure the exception names the path tried.
        /// </summary>
        public static void EnsureLoaded()
        {
            lock (Gate)
            {
                if (loaded)
                {
                    return;
                }
                string folder = Path.GetDirectoryName(typeof(NativeLibrary).Assembly.Location);
                bool windows = Environment.OSVersion.Platform == PlatformID.Win32NT;
                string path = Path.Combine(folder, windows ? "halo.dll" : "libhalo.so");
                if (!File.Exists(path))
                {
                    throw new DllNotFoundException(
                        "halo's native library was not found at " + path +
                        "; copy it next to Halo.dll (x64 build)");
                }
                IntPtr handle = windows ? Windows.LoadLibrary(path) : Posix.dlopen(path, 2 | 256);
                if (handle == IntPtr.Zero)
                {
                    string why = windows
                        ? "Win32 error " + Marshal.GetLastWin32Error()
                        : Marshal.PtrToStringAnsi(Posix.dlerror());
                    throw new DllNotFoundException("cannot load " + path + ": " + why);
                }
                LoadedPath = path;
                loaded = true;
            }
        }

        private static class Windows
        {
            [DllImport("kernel32", SetLastError = true, CharSet = CharSet.Unicode)]
            internal static extern IntPtr LoadLibrary(string path);
        }

        private static class Posix
        {
            // RTLD_NOW (2) | RTLD_GLOBAL (256).
            [DllImport("libdl.so.2")]
            internal static extern IntPtr dlopen(string path, int flags);

            [DllImport("libdl.so.2")]
            internal static extern IntPtr dlerror();
        }
    }
}
