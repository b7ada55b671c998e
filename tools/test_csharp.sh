#!/usr/bin/env bash
# Compiles the C# bridge with Mono's mcs (C# 7.2, .NET Framework 4.5
# profile) and runs its NUnit 2.6 tests under Mono, with the native
# libraries copied beside the assemblies as a plug-in folder would hold them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bridge-csharp/build
nunit=/usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll
mkdir -p "$out"
cp target/release/libhalo.so "$out/"
if [[ -f target/release/libhalo_torch.so ]]; then
  cp target/release/libhalo_torch.so "$out/"
fi

mcs=(mcs -langversion:7.2 -nologo -warnaserror -debug)
"${mcs[@]}" -target:library -doc:"$out/Halo.xml" -out:"$out/Halo.dll" bridge-csharp/Halo/*.cs
if compgen -G "bridge-csharp/Halo.Esapi/*.cs" >/dev/null; then
  "${mcs[@]}" -target:library -r:"$out/Halo.dll" -out:"$out/Halo.Esapi.dll" \
    bridge-csharp/Halo.Esapi/*.cs
  esapi_ref=(-r:"$out/Halo.Esapi.dll")
else
  esapi_ref=()
fi
"${mcs[@]}" -target:library -r:"$out/Halo.dll" "${esapi_ref[@]}" -r:"$nunit" \
  -out:"$out/Halo.Tests.dll" bridge-csharp/Halo.Tests/*.cs
cp "$nunit" "$out/"

# The Eclipse plug-in sample must compile: against compile-only ESAPI
# stand-ins here (tools/build_esapi_plugin.sh builds it against the real ones).
"${mcs[@]}" -target:library -nowarn:1591 -out:"$out/EsapiStubs.dll" bridge-csharp/EsapiStubs/*.cs
"${mcs[@]}" -target:library -r:"$out/Halo.dll" -r:"$out/Halo.Esapi.dll" -r:"$out/EsapiStubs.dll" \
  -r:System.Windows.Forms.dll -out:"$out/HaloUncertainty.esapi.dll" samples/esapi/HaloUncertainty.cs
echo "the ESAPI plug-in sample compiles" >&2

export HALO_REPO=$PWD
cd "$out"
nunit-console -nologo -labels Halo.Tests.dll -xml=TestResult.xml
