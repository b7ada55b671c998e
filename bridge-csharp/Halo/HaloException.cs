// Native failures as exceptions: every status other than OK becomes a
// HaloException carrying the status and halo's message, in one place.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Halo
{
    /// <summary>Status codes of the C ABI (include/halo.h); numbers never change.</summary>
    public enum HaloStatus
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>A required pointer argument was NULL.</summary>
        NullArgument = 1,
        /// <summary>An argument was out of its domain.</summary>
        InvalidArgument = 2,
        /// <summary>A buffer was too small.</summary>
        BufferTooSmall = 3,
        /// <summary>A file could not be read or written.</summary>
        Io = 4,
        /// <summary>A DICOM input was unusable.</summary>
        Dicom = 5,
        /// <summary>The inference backend failed or is missing.</summary>
        Backend = 6,
        /// <summary>The operation was cancelled.</summary>
        Cancelled = 7,
        /// <summary>A bug in halo (a caught panic).</summary>
        Internal = 8,
        /// <summary>A model folder was unusable.</summary>
        Model = 9,
        /// <summary>A network peer refused or failed.</summary>
        Network = 10,
    }

    /// <summary>A failure reported by the native halo library.</summary>
    public class HaloException : Exception
    {
        /// <summary>Creates the exception for a status and message.</summary>
        public HaloException(HaloStatus status, string message)
            : base(message)
        {
            Status = status;
        }

        /// <summary>The native status code.</summary>
        public HaloStatus Status { get; private set; }
    }

    /// <summary>Turns native status codes into exceptions.</summary>
    internal static class Status
    {
        /// <summary>Throws unless <paramref name="status"/> is OK.</summary>
        internal static void Check(HaloStatus status)
        {
            if (status == HaloStatus.Ok)
            {
                return;
            }
            string message = LastError();
            if (status == HaloStatus.Cancelled)
            {
                throw new OperationCanceledException(message);
            }
            throw new HaloException(status, message);
        }

        /// <summary>The calling thread's last native error message.</summary>
        internal static string LastError()
        {
            UIntPtr needed;
            Native.halo_last_error_message(null, UIntPtr.Zero, out needed);
            var buffer = new byte[(int)needed.ToUInt64()];
            Native.halo_last_error_message(buffer, (UIntPtr)buffer.Length, out needed);
            int length = Array.IndexOf(buffer, (byte)0);
            return Encoding.UTF8.GetString(buffer, 0, length < 0 ? buffer.Length : length);
        }

        /// <summary>A NUL-terminated UTF-8 copy of a string, or null.</summary>
        internal static byte[] Utf8(string value)
        {
            if (value == null)
            {
                return null;
            }
            var bytes = Encoding.UTF8.GetBytes(value);
            var z = new byte[bytes.Length + 1];
            Buffer.BlockCopy(bytes, 0, z, 0, bytes.Length);
            return z;
        }

        private static class Native
        {
            static Native()
            {
                NativeLibrary.EnsureLoaded();
            }

            [DllImport(NativeLibrary.Name, CallingConvention = CallingConvention.Cdecl)]
            internal static extern HaloStatus halo_last_error_message(
                byte[] buf, UIntPtr len, out UIntPtr needed);
        }
    }
}
