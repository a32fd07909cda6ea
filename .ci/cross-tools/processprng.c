/* bcryptprimitives.dll for wine before 9.0, which lacks it: Rust's std
 * (1.78 and later) gets its random bytes from ProcessPrng, and a program
 * without it does not start. This one forwards to RtlGenRandom
 * (SystemFunction036 in advapi32), which wine has. .ci/cross builds it with
 * mingw into its own wine prefix; real Windows (10 and later) has the DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
