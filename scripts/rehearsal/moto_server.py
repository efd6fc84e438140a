"""moto server for the deploy rehearsal: IAM enforced, and CloudFormation able to create every resource
type the translated infra/template.yaml uses.

    moto_server.py PORT

Binds 127.0.0.1:PORT. IAM enforcement is moto's own: set INITIAL_NO_AUTH_ACTION_COUNT in the environment
(the rehearsal uses 3: the calls that create the deploying user and its key), and every later request
must be signed by a known key and allowed by the caller's policies.

moto's CloudFormation (5.2.5) has no handler for five resource types the template uses. The handlers
below add them, each creating the resource through the same moto service backend that the API calls
reach, so the stack's Refs, GetAtts and outputs resolve as on AWS. They accept only the properties the
template uses and fail on any other, so a template change they cannot honour fails the rehearsal instead
of being skipped:

- AWS::SecretsManager::Secret (Name, Description, SecretString, GenerateSecretString); Ref = the ARN.
  Without SecretString and GenerateSecretString the secret has no value, as on AWS.
- AWS::Lambda::Url (TargetFunctionArn, AuthType); GetAtt FunctionUrl, FunctionArn.
- AWS::Lambda::EventInvokeConfig (FunctionName, Qualifier, MaximumRetryAttempts,
  MaximumEventAgeInSeconds; an empty DestinationConfig).
- AWS::CloudWatch::Alarm (single-metric and metric-math alarms).
- AWS::SNS::Subscription (TopicArn, Protocol, Endpoint).

One of moto's own handlers is wrapped: AWS::IAM::Role stores a role's inline policies as objects, which
moto's IAM check then cannot read (every call under the role fails with KeyError 'policy_document'); the
wrapper lets moto create the role and stores its inline policies as the JSON text the IAM API stores.
"""

import json
import sys

from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.awslambda.models import lambda_backends
from moto.iam.models import Role
from moto.secretsmanager.models import secretsmanager_backends
from moto.sns.models import sns_backends


# moto files every model under the second part of its module's name (moto.<service>.models).
MODULE = "rehearsal.cloudformation"


def properties(cfn_json, allowed, resource_type):
    props = cfn_json.get("Properties", {})
    unknown = sorted(set(props) - set(allowed))
    if unknown:
        raise ValueError(f"the rehearsal's {resource_type} handler does not implement {unknown}")
    return props



class CfnSecret(CloudFormationModel):
    __module__ = MODULE

    def __init__(self, secret):
        self.secret = secret

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @property
    def physical_resource_id(self):
        return self.secret.arn

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "Id":
            return self.secret.arn
        raise NotImplementedError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = properties(
            cloudformation_json,
            ["Name", "Description", "SecretString", "GenerateSecretString"],
            cls.cloudformation_type(),
        )
        backend = secretsmanager_backends[account_id][region_name]
        value = props.get("SecretString")
        generate = props.get("GenerateSecretString")
        if generate is not None:
            if value is not None:
                raise ValueError("SecretString and GenerateSecretString are mutually exclusive")
            allowed = {"PasswordLength", "ExcludePunctuation", "ExcludeCharacters", "ExcludeNumbers",
                       "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType"}
            unknown = sorted(set(generate) - allowed)
            if unknown:
                raise ValueError(f"GenerateSecretString: the rehearsal does not implement {unknown}")
            value = json.loads(
                backend.get_random_password(
                    password_length=int(generate.get("PasswordLength", 32)),
                    exclude_characters=generate.get("ExcludeCharacters", ""),
                    exclude_numbers=generate.get("ExcludeNumbers", False),
                    exclude_punctuation=generate.get("ExcludePunctuation", False),
                    exclude_uppercase=generate.get("ExcludeUppercase", False),
                    exclude_lowercase=generate.get("ExcludeLowercase", False),
                    include_space=generate.get("IncludeSpace", False),
                    require_each_included_type=generate.get("RequireEachIncludedType", True),
                )
            )["RandomPassword"]
        backend.create_secret(
            name=resource_name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=None,
            kms_key_id=None,
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(backend.secrets[resource_name])


class CfnFunctionUrl(CloudFormationModel):
    __module__ = MODULE

    def __init__(self, function, url_config):
        self.function = function
        self.url_config = url_config

    @staticmethod
    def cloudformation_type():
        return "AWS::Lambda::Url"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @property
    def physical_resource_id(self):
        return self.function.function_arn

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("FunctionUrl", "FunctionArn")

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "FunctionUrl":
            return self.url_config.url
        if attribute_name == "FunctionArn":
            return self.function.function_arn
        raise NotImplementedError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = properties(cloudformation_json, ["TargetFunctionArn", "AuthType"], cls.cloudformation_type())
        backend = lambda_backends[account_id][region_name]
        target = props["TargetFunctionArn"]
        url_config = backend.create_function_url_config(target, {"AuthType": props["AuthType"]})
        return cls(backend.get_function(target), url_config)


class CfnEventInvokeConfig(CloudFormationModel):
    __module__ = MODULE

    def __init__(self, function_name):
        self.function_name = function_name

    @staticmethod
    def cloudformation_type():
        return "AWS::Lambda::EventInvokeConfig"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @property
    def physical_resource_id(self):
        return self.function_name

    @classmethod
    def has_cfn_attr(cls, attr):
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = properties(
            cloudformation_json,
            ["FunctionName", "Qualifier", "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"],
            cls.cloudformation_type(),
        )
        if props.get("DestinationConfig"):
            raise ValueError("the rehearsal's AWS::Lambda::EventInvokeConfig handler implements no destinations")
        config = {k: int(props[k]) for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds") if k in props}
        lambda_backends[account_id][region_name].put_function_event_invoke_config(props["FunctionName"], config)
        return cls(props["FunctionName"])


def dimensions(items):
    return [Dimension(name=d["Name"], value=d["Value"]) for d in items or []]


class CfnAlarm(CloudFormationModel):
    __module__ = MODULE

    def __init__(self, alarm):
        self.alarm = alarm

    @staticmethod
    def cloudformation_type():
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():
        return "AlarmName"

    @property
    def physical_resource_id(self):
        return self.alarm.name

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "Arn":
            return self.alarm.alarm_arn
        raise NotImplementedError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = properties(
            cloudformation_json,
            ["AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "Period",
             "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions",
             "Metrics"],
            cls.cloudformation_type(),
        )
        queries = None
        if props.get("Metrics"):
            queries = []
            for m in props["Metrics"]:
                stat = None
                if "MetricStat" in m:
                    ms = m["MetricStat"]
                    metric = Metric(
                        metric_name=ms["Metric"]["MetricName"],
                        namespace=ms["Metric"]["Namespace"],
                        dimensions=dimensions(ms["Metric"].get("Dimensions")),
                    )
                    stat = MetricStat(metric=metric, period=ms["Period"], stat=ms["Stat"], unit=ms.get("Unit"))
                queries.append(
                    MetricDataQuery(
                        query_id=m["Id"],
                        label=m.get("Label"),
                        period=m.get("Period"),
                        return_data=m.get("ReturnData"),
                        expression=m.get("Expression"),
                        metric_stat=stat,
                    )
                )
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            period=int(props["Period"]) if "Period" in props else None,
            threshold=float(props["Threshold"]),
            statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=props.get("Dimensions", []),
            alarm_actions=props.get("AlarmActions", []),
            metric_data_queries=queries,
            treat_missing_data=props.get("TreatMissingData"),
        )
        return cls(alarm)


class CfnSubscription(CloudFormationModel):
    __module__ = MODULE

    def __init__(self, subscription):
        self.subscription = subscription

    @staticmethod
    def cloudformation_type():
        return "AWS::SNS::Subscription"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @property
    def physical_resource_id(self):
        return self.subscription.arn

    @classmethod
    def has_cfn_attr(cls, attr):
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = properties(cloudformation_json, ["TopicArn", "Protocol", "Endpoint"], cls.cloudformation_type())
        backend = sns_backends[account_id][region_name]
        return cls(backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"]))


class CfnRole(CloudFormationModel):
    """moto's AWS::IAM::Role, with its inline policies stored as JSON text (listed after moto's handler,
    so moto's CloudFormation picks this one for the type)."""

    __module__ = MODULE

    @staticmethod
    def cloudformation_type():
        return "AWS::IAM::Role"

    @staticmethod
    def cloudformation_name_type():
        return Role.cloudformation_name_type()

    @classmethod
    def has_cfn_attr(cls, attr):
        return Role.has_cfn_attr(attr)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        role = Role.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        for name, document in list(role.policies.items()):
            if not isinstance(document, str):
                role.policies[name] = json.dumps(document)
        return role

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        return Role.delete_from_cloudformation_json(resource_name, cloudformation_json, account_id, region_name)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: moto_server.py PORT")
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", sys.argv[1]])


if __name__ == "__main__":
    main()
