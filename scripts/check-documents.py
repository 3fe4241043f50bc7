#!/usr/bin/env python3
"""Check an image's or SIF's documents with third-party validators, not our own reader.

Usage: check-documents.py DIR   (DIR holds sbom.spdx.json and provenance.intoto.json, as
`spackah provenance --extract DIR` writes them)

- the SBOM: the SPDX project's own validator (`pyspdxtools -i`, from spdx-tools; silent when
  valid), then the SPDX 2.3 JSON schema (tests/fixtures/schemas/spdx-2.3.json);
- the provenance: parsed into in-toto's own protobuf types (in-toto-attestation, which reject
  unknown fields) and validated by them, then its SLSA Provenance v1 predicate likewise, with
  the fields the SLSA spec requires (buildType, externalParameters, builder.id). Upstream
  publishes these formats as protobuf, not JSON schema (tests/fixtures/schemas/NOTICE.md).

Prints one line per document and exits 1 at the first invalid one.
"""
import json
import os
import subprocess
import sys

import jsonschema
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPDX_SCHEMA = os.path.join(ROOT, "tests", "fixtures", "schemas", "spdx-2.3.json")


def fail(what, why):
    print(f"INVALID {what}: {why}")
    sys.exit(1)


def check_sbom(path):
    tool = os.path.join(os.path.dirname(sys.executable), "pyspdxtools")
    out = subprocess.run([tool, "-i", path], capture_output=True, text=True)
    said = (out.stdout + out.stderr).strip()
    # pyspdxtools prints validation messages (and "The document is valid." only with --verbose).
    if out.returncode != 0 or said:
        fail(path, f"pyspdxtools -i (exit {out.returncode}): {said}")
    with open(SPDX_SCHEMA) as f:
        schema = json.load(f)
    with open(path) as f:
        doc = json.load(f)
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))
    if errors:
        fail(path, "; ".join(f"{list(e.absolute_path)} {e.message}" for e in errors[:5]))
    print(f"valid SPDX 2.3 (pyspdxtools, schema): {path}, {len(doc['packages'])} packages")


def check_provenance(path):
    with open(path) as f:
        doc = json.load(f)
    try:
        st = json_format.ParseDict(doc, statement_pb2.Statement())
        Statement.copy_from_pb(st).validate()
        if st.predicate_type != "https://slsa.dev/provenance/v1":
            fail(path, f"predicateType {st.predicate_type}")
        p = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
        for field, present in [
            ("buildType", p.build_definition.build_type),
            ("externalParameters", p.build_definition.HasField("external_parameters")),
            ("builder.id", p.run_details.builder.id),
        ]:
            if not present:
                fail(path, f"no {field}")
        for rd in p.build_definition.resolved_dependencies:
            ResourceDescriptor.copy_from_pb(rd).validate()
    except (json_format.ParseError, ValueError, KeyError) as e:
        fail(path, e)
    print(f"valid in-toto Statement v1 / SLSA Provenance v1: {path}")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    folder = sys.argv[1]
    check_sbom(os.path.join(folder, "sbom.spdx.json"))
    check_provenance(os.path.join(folder, "provenance.intoto.json"))


if __name__ == "__main__":
    main()
