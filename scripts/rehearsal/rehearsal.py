"""The deploy rehearsal's control plane on moto (scripts/rehearsal/moto_server.py, IAM enforced): what an
operator and CloudFormation do before and around the functions. The Rust harness
(functions/common/tests/aws_emulators/rehearsal.rs) calls it; every subcommand prints one JSON object.

    rehearsal.py bootstrap ENDPOINT
        Creates the deploying user with the calls moto lets through unauthenticated
        (INITIAL_NO_AUTH_ACTION_COUNT=3: CreateUser, PutUserPolicy, CreateAccessKey), then checks that
        an unsigned call is refused. Prints its access key.

    rehearsal.py create-stack ENDPOINT STACK TEMPLATE.json KEY=VALUE...   (deployer's key in AWS_*)
        Uploads placeholder code objects, creates the stack from the translated template with the given
        parameters and checks that every resource of the template (conditions applied) was created.
        Then, for each function: its configuration as Lambda holds it, its role's policies (the truth,
        as CloudFormation created them), and credentials of that role (sts:AssumeRole). Prints it all.

    rehearsal.py put-logs ENDPOINT SPEC.json
        What Lambda does with each function's output, with that function's role: CreateLogStream, then
        PutLogEvents with the lines of its file. SPEC is a list of {group, stream, file, access_key_id,
        secret_access_key, session_token}.

    rehearsal.py remove-action ENDPOINT ROLE ACTION   (deployer's key in AWS_*)
        The negative control: removes ACTION from every inline policy of ROLE.

Two adjustments let moto run the stack's roles, and both are printed with the result:
- moto cannot evaluate a service principal in a trust policy (lambda.amazonaws.com crashes its
  AssumeRole check), so each function role's trust policy is replaced by one naming the deploying user,
  who stands in for the Lambda service when it assumes the role.
- moto authorizes Secrets Manager, DynamoDB and CloudWatch Logs calls against the resource "*" only (it
  knows no ARN for them), so a statement naming an ARN there would refuse every call. In the policies
  moto checks, those statements name "*"; the harness's own evaluator checks the calls against the
  true policies (printed as `policies`), ARN by ARN. moto also names a DynamoDB transaction's action
  dynamodb:TransactWriteItems, which is no IAM action (AWS checks each item's PutItem, UpdateItem,
  DeleteItem, ConditionCheckItem): moto's copy allows it where the true policy allows those.
"""

import io
import json
import os
import sys
import urllib.request
import zipfile

import boto3
from botocore.config import Config

REGION = "us-east-1"
DEPLOYER = "deployer"
CODE_BUCKET = "campbridge-rehearsal-code"
# Services moto authorizes against resource "*" only (moto/core/responses.py: only SQS, IAM, STS and S3
# name a resource).
STAR_ONLY = ("secretsmanager:", "dynamodb:", "logs:")
TRANSACTION_ITEM_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"}


def client(service, endpoint, **creds):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}),
        **creds,
    )


def out(value):
    json.dump(value, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


def bootstrap(endpoint):
    anonymous = dict(aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam = client("iam", endpoint, **anonymous)
    user = iam.create_user(UserName=DEPLOYER)["User"]
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=DEPLOYER, PolicyName="administrator", PolicyDocument=json.dumps(admin))
    key = iam.create_access_key(UserName=DEPLOYER)["AccessKey"]
    try:
        iam.list_users()
        sys.exit("rehearsal.py: moto answered an unsigned call: IAM is not enforced")
    except iam.exceptions.ClientError as e:
        refused = e.response["Error"]["Code"]
    out({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"], "arn": user["Arn"],
         "unsigned_call": refused})


def deployer_creds():
    return dict(aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])


def condition_values(template, params):
    """The template's conditions, for the simple forms it uses (Equals, Not, parameter Refs)."""

    def value(node):
        if isinstance(node, dict) and "Ref" in node:
            return params[node["Ref"]]
        if isinstance(node, dict) and "Fn::Equals" in node:
            a, b = node["Fn::Equals"]
            return str(value(a)) == str(value(b))
        if isinstance(node, dict) and "Fn::Not" in node:
            return not value(node["Fn::Not"][0])
        if isinstance(node, (str, int)):
            return node
        raise ValueError(f"condition form not handled by the rehearsal: {node}")

    return {name: value(c) for name, c in template.get("Conditions", {}).items()}


def resolve_param(node, params):
    if isinstance(node, dict) and "Ref" in node and node["Ref"] in params:
        return params[node["Ref"]]
    if isinstance(node, (str, int)):
        return node
    raise ValueError(f"value form not handled by the rehearsal: {node}")


def moto_view(document):
    """The copy of a policy moto checks (see the module doc)."""
    view = json.loads(json.dumps(document))
    for statement in view["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if all(a.startswith(STAR_ONLY) for a in actions):
            statement["Resource"] = "*"
        if TRANSACTION_ITEM_ACTIONS & set(actions):
            statement["Action"] = sorted(set(actions) | {"dynamodb:TransactWriteItems"})
    return view


def create_stack(endpoint, stack, template_path, pairs):
    creds = deployer_creds()
    params = dict(p.split("=", 1) for p in pairs)
    with open(template_path, encoding="utf-8") as f:
        template = json.load(f)
    for name, spec in template.get("Parameters", {}).items():
        if name not in params and "Default" in spec:
            params[name] = str(spec["Default"])

    s3 = client("s3", endpoint, **creds)
    if CODE_BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=CODE_BUCKET)
    functions = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    for logical_id, resource in functions.items():
        code = resource["Properties"]["Code"]
        assert code["S3Bucket"] == CODE_BUCKET, code
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("README", "campbridge deploy rehearsal: this function's binary runs on cargo-lambda's runtime emulator\n")
        s3.put_object(Bucket=CODE_BUCKET, Key=code["S3Key"], Body=buf.getvalue())

    cfn = client("cloudformation", endpoint, **creds)
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items() if k in template.get("Parameters", {})],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        sys.exit(f"rehearsal.py: stack {stack} is {described['StackStatus']}: {described.get('StackStatusReason')}")
    conditions = condition_values(template, params)
    expected = {k for k, r in template["Resources"].items() if conditions.get(r.get("Condition"), True)}
    created = {}
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            if r["ResourceStatus"] == "CREATE_COMPLETE":
                created[r["LogicalResourceId"]] = r.get("PhysicalResourceId")
    missing = sorted(expected - set(created))
    if missing:
        sys.exit(f"rehearsal.py: moto's CloudFormation did not create {missing}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}

    # Lambda's view of each function. moto cannot check SigV4 on a GET without a query string (it
    # hashes its header map as the payload), so these reads go unsigned, through exactly as many
    # unauthenticated requests as there are functions (moto's reset-auth); enforcement resumes after.
    names = [created[k] for k in functions]
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=str(len(names)).encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).read()
    lam = client("lambda", endpoint, aws_access_key_id="unsigned", aws_secret_access_key="unsigned")
    configs = {name: lam.get_function(FunctionName=name) for name in names}
    try:
        lam.get_function(FunctionName=names[0])
        sys.exit("rehearsal.py: moto still answers unsigned calls after the function reads")
    except lam.exceptions.ClientError:
        pass

    iam = client("iam", endpoint, **creds)
    sts = client("sts", endpoint, **creds)
    account = sts.get_caller_identity()["Account"]
    deployer_arn = f"arn:aws:iam::{account}:user/{DEPLOYER}"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": deployer_arn}, "Action": "sts:AssumeRole"}]}
    result = {}
    for logical_id, resource in functions.items():
        name = created[logical_id]
        got = configs[name]
        config = got["Configuration"]
        role_name = config["Role"].split("/")[-1]
        policies = {}
        for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
            policies[policy_name] = document
            iam.put_role_policy(RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(moto_view(document)))
        attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]]
        original_trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary", logical_id)
        assumed = sts.assume_role(RoleArn=config["Role"], RoleSessionName=binary)["Credentials"]
        logging = {k: resolve_param(v, params) for k, v in resource["Properties"].get("LoggingConfig", {}).items()}
        result[binary] = {
            "logical_id": logical_id,
            "function_name": name,
            "role_arn": config["Role"],
            "role_trust_policy": original_trust,
            "environment": config.get("Environment", {}).get("Variables", {}),
            "logging": logging,
            "memory": config.get("MemorySize"),
            "timeout": config.get("Timeout"),
            "reserved_concurrency": got.get("Concurrency", {}).get("ReservedConcurrentExecutions"),
            "policies": policies,
            "attached_policies": attached,
            "credentials": {
                "access_key_id": assumed["AccessKeyId"],
                "secret_access_key": assumed["SecretAccessKey"],
                "session_token": assumed["SessionToken"],
            },
        }
    sm = client("secretsmanager", endpoint, **creds)
    secrets = {}
    for page in sm.get_paginator("list_secrets").paginate():
        for s in page["SecretList"]:
            secrets[s["Name"]] = {"arn": s["ARN"], "has_value": bool(s.get("SecretVersionsToStages"))}
    out({
        "account": account,
        "region": REGION,
        "stack": stack,
        "parameters": params,
        "resources": created,
        "outputs": outputs,
        "functions": result,
        "secrets": secrets,
    })


def put_logs(endpoint, spec_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    written = {}
    for item in spec:
        logs = client(
            "logs",
            endpoint,
            aws_access_key_id=item["access_key_id"],
            aws_secret_access_key=item["secret_access_key"],
            aws_session_token=item["session_token"],
        )
        group, stream = item["group"], item["stream"]
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        with open(item["file"], encoding="utf-8", errors="replace") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
        events = [{"timestamp": 1_700_000_000_000 + i, "message": line[:200_000]} for i, line in enumerate(lines)]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start:start + 1000])
        written[group] = len(events)
    out(written)


def remove_action(endpoint, role, action):
    iam = client("iam", endpoint, **deployer_creds())
    removed = 0
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            kept = [a for a in actions if a != action]
            removed += len(actions) - len(kept)
            statement["Action"] = kept
        document["Statement"] = [s for s in document["Statement"] if s["Action"]]
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
    if not removed:
        sys.exit(f"rehearsal.py: {role} has no {action} to remove")
    out({"removed": removed})


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "bootstrap":
        bootstrap(sys.argv[2])
    elif len(sys.argv) >= 5 and sys.argv[1] == "create-stack":
        create_stack(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif len(sys.argv) == 4 and sys.argv[1] == "put-logs":
        put_logs(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "remove-action":
        remove_action(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
