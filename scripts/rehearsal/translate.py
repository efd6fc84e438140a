"""Translates infra/template.yaml into the CloudFormation template AWS would run, offline, with the SAM
translator (PyPI aws-sam-translator, pinned in scripts/emulators.sh): the same transform CloudFormation
applies to `Transform: AWS::Serverless-2016-10-31` on deploy.

    translate.py TEMPLATE OUT.json CODE_BUCKET

Each function's `CodeUri` (a local path that `sam build` would package and upload) becomes
s3://CODE_BUCKET/<logical id>.zip, as after `sam package`. No managed policy is looked up by name (the
template names none), so no AWS call is made; the region is fixed to us-east-1.
"""

import json
import os
import sys

os.environ["AWS_DEFAULT_REGION"] = "us-east-1"

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    """The template attaches no managed policy by name; refuse to look any up."""

    def load(self):
        raise SystemExit("translate.py: the template names a managed policy; the rehearsal resolves none")


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: translate.py TEMPLATE OUT.json CODE_BUCKET")
    source, out, bucket = sys.argv[1:]
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = {"Bucket": bucket, "Key": f"{logical_id}.zip"}
    translated = transform(template, {}, NoManagedPolicies())
    with open(out, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
