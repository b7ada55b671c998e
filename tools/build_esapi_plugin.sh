#!/usr/bin/env bash
# Builds the Eclipse plug-in sample (samples/esapi) against the real ESAPI
# assemblies, which only exist on an Eclipse workstation or its SDK:
#
#   ESAPI_DIR=/path/to/esapi/assemblies bash tools/build_esapi_plugin.sh
#
# ESAPI_DIR must hold VMS.TPS.Common.Model.API.dll and
# VMS.TPS.Common.Model.Types.dll. Without it this script says so and exits 0:
# the plug-in is a sample, not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${ESAPI_DIR:-} || ! -f ${ESAPI_DIR}/VMS.TPS.Common.Model.API.dll ]]; then
  echo "ESAPI assemblies not found (set ESAPI_DIR); the Eclipse plug-in sample is not built" >&2
  exit 0
fi
out=bridge-csharp/build/esapi
mkdir -p "$out"
bash tools/test_csharp.sh >/dev/null  # builds Halo.dll and Halo.Esapi.dll
cp bridge-csharp/build/Halo.dll bridge-csharp/build/Halo.Esapi.dll "$out/"
mcs -langversion:7.2 -nologo -target:library -platform:x64 \
  -r:"$ESAPI_DIR/VMS.TPS.Common.Model.API.dll" -r:"$ESAPI_DIR/VMS.TPS.Common.Model.Types.dll" \
  -r:"$out/Halo.dll" -r:"$out/Halo.Esapi.dll" -r:System.Windows.Forms.dll \
  -out:"$out/HaloUncertainty.esapi.dll" samples/esapi/HaloUncertainty.cs
echo "built $out/HaloUncertainty.esapi.dll; copy $out and halo.dll (x64) beside it" >&2
