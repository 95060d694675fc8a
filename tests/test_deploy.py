"""Deploying for real, proven offline: stages, policy, infrastructure, secrets, package.

AWS is out of reach here, so:
- the table goes to DynamoDB Local through the very function `cli infra create` uses;
- SSM and SES calls go through botocore's Stubber, which checks every request against
  the real service models shipped with botocore (names, types, required parameters);
- `chalice package --stage prod --merge-template` builds the real CloudFormation/SAM
  template, `cfn-lint` (with the SAM translator) validates it, and the deployment zip
  is unpacked into a clean directory and invoked, with only boto3/botocore beside it,
  with a recorded API Gateway proxy event (the confirmation page) and a DynamoDB stream
  event (the sync) against DynamoDB Local and the Act! simulator.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from chalicelib.consent import rules
from chalicelib.store import infra
from chalicelib.core import secrets
from chalicelib.core.errors import ConfigError
from chalicelib.store.ledger import from_item
from chalicelib.core.services import dynamodb_client, get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from tests.conftest import ROOT
from tests.support.package import LAMBDA_PROVIDED, MB, SITE_PACKAGES

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
HANDLERS = ("api_handler", "on_table_change", "sync_sweep", "mail_sweep", "webhooks_sweep",
            "campaign_sweep", "act_poll", "validity_sweep", "anchor_sweep")
DOMAIN = "example-outdoor.eu"


# -- configuration and policy --------------------------------------------------------------

@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stages_are_sized_and_hold_no_secret(stage: str):
    config = CONFIG["stages"][stage]
    variables = {**CONFIG.get("environment_variables", {}), **config["environment_variables"]}
    assert variables["CONSENT_TABLE"] == f"optinproof-{stage}"
    assert variables["SECRETS_SSM_PATH"] == f"/optinproof/{stage}/"
    leaked = set(variables) & set(secrets.SECRET_NAMES)
    assert not leaked, f"secrets in config.json: {leaked}"
    assert CONFIG["autogen_policy"] is False
    assert (ROOT / ".chalice" / config["iam_policy_file"]).is_file()
    functions = config["lambda_functions"]
    assert set(functions) == set(HANDLERS)
    for name, sizing in functions.items():
        assert 128 <= sizing["lambda_memory_size"] <= 10240 and sizing["lambda_timeout"] <= 900
    assert functions["api_handler"]["lambda_timeout"] <= 29  # API Gateway's own limit
    assert functions["campaign_sweep"]["lambda_timeout"] == 900  # the longest passes
    assert functions["sync_sweep"]["reserved_concurrency"] == 1  # one sweeper paces Act!
    assert functions["act_poll"]["reserved_concurrency"] == 1  # one poll at a time (and a lease)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_policy_files_are_least_privilege_and_generated(stage: str):
    committed = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    assert committed == infra.policy(stage, DOMAIN), "regenerate: cli infra policy --write"
    for statement in committed["Statement"]:
        actions = statement["Action"]
        assert all(":" in a and not a.endswith("*") for a in actions), actions
        resources = statement["Resource"] if isinstance(statement["Resource"], list) \
            else [statement["Resource"]]
        if any(a.startswith("dynamodb:") and a != "dynamodb:ListStreams" for a in actions):
            assert all(f"table/optinproof-{stage}" in r for r in resources), resources
        if statement["Resource"] == "*":  # only what IAM cannot scope, and only that
            assert actions in (["dynamodb:ListStreams"], ["kms:Decrypt"])
            if actions == ["kms:Decrypt"]:
                assert statement["Condition"]["StringLike"]["kms:ViaService"]


# -- infrastructure -------------------------------------------------------------------------

def test_infra_create_against_dynamodb_local_is_idempotent(dynamodb, monkeypatch):
    client = boto3.session.Session().client(
        "dynamodb", endpoint_url=dynamodb.endpoint, region_name="eu-west-1",
        aws_access_key_id="local", aws_secret_access_key="local")
    stage = f"t{int(time.time() * 1000) % 10**8}"
    try:
        done, outputs = infra.create(stage, None, client, None, None)
        assert f"created table optinproof-{stage}" in done
        assert outputs["stream_arn"].startswith("arn:aws:dynamodb:")
        table = client.describe_table(TableName=f"optinproof-{stage}")["Table"]
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["pending-sync"]
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        again, _ = infra.create(stage, None, client, None, None)
        assert f"table optinproof-{stage} already exists" in again
        assert any("TTL already on" in line for line in again)
    finally:
        client.delete_table(TableName=f"optinproof-{stage}")


def _ssm() -> Any:
    return boto3.session.Session().client("ssm", region_name="eu-west-1",
                                          aws_access_key_id="x", aws_secret_access_key="x")


def test_secrets_init_generates_securestrings_and_never_overwrites():
    client = _ssm()
    with Stubber(client) as stub:
        for name in secrets.GENERATED:
            expected = {"Name": f"/optinproof/prod/{name}", "Type": "SecureString",
                        "Overwrite": False, "Value": ANY, "Description": ANY}
            if name == "SUBJECT_PEPPER":
                stub.add_client_error("put_parameter", "ParameterAlreadyExists",
                                      expected_params=expected)
            else:
                stub.add_response("put_parameter", {"Version": 1}, expected)
        done = infra.init_secrets(client, "prod")
        stub.assert_no_pending_responses()
    assert "secret /optinproof/prod/SUBJECT_PEPPER kept" in done
    assert "secret /optinproof/prod/LINK_SECRET_KEYS generated" in done


def test_secret_set_refuses_unknown_names_and_empty_values():
    with pytest.raises(ConfigError, match="not a secret"):
        infra.set_secret(_ssm(), "prod", "CONSENT_TABLE", "x")
    with pytest.raises(ConfigError, match="value"):
        infra.set_secret(_ssm(), "prod", "ACT_PASSWORD", "")


def test_ses_identity_is_created_once():
    client = boto3.session.Session().client("sesv2", region_name="eu-west-1",
                                            aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("create_email_identity", {
            "IdentityType": "DOMAIN", "VerifiedForSendingStatus": False,
            "DkimAttributes": {"Tokens": ["abc"]}}, {"EmailIdentity": DOMAIN})
        stub.add_client_error("create_email_identity", "AlreadyExistsException",
                              expected_params={"EmailIdentity": DOMAIN})
        assert "abc._domainkey.example-outdoor.eu CNAME" in infra._ses_identity(client, DOMAIN)
        assert "already exists" in infra._ses_identity(client, DOMAIN)


# -- secrets at run time ----------------------------------------------------------------------

def test_secrets_come_from_ssm_cached_and_the_environment_wins():
    secrets.forget()
    client = _ssm()
    clock = [100.0]
    with Stubber(client) as stub:
        for _ in range(2):  # first load, then one reload after the cache expired
            stub.add_response("get_parameters_by_path", {
                "Parameters": [{"Name": "/optinproof/prod/LINK_SECRET_KEYS", "Value": "ssm-key",
                                "Type": "SecureString"}], "NextToken": "n"},
                {"Path": "/optinproof/prod/", "WithDecryption": True, "Recursive": False})
            stub.add_response("get_parameters_by_path", {
                "Parameters": [{"Name": "/optinproof/prod/SUBJECT_PEPPER", "Value": "ssm-pepper",
                                "Type": "SecureString"},
                               {"Name": "/optinproof/prod/NOT_A_SECRET", "Value": "x",
                                "Type": "String"}]},
                {"Path": "/optinproof/prod/", "WithDecryption": True, "Recursive": False,
                 "NextToken": "n"})
        env = {"SECRETS_SSM_PATH": "/optinproof/prod/", "SUBJECT_PEPPER": "from-env"}
        values = secrets.environment(env, lambda region: client, lambda: clock[0])
        assert values["LINK_SECRET_KEYS"] == "ssm-key"
        assert values["SUBJECT_PEPPER"] == "from-env"  # the environment wins
        assert "NOT_A_SECRET" not in values
        clock[0] += 100  # within the cache: no call
        secrets.environment(env, lambda region: client, lambda: clock[0])
        clock[0] += 400  # expired: read again (a rotated key arrives)
        secrets.environment(env, lambda region: client, lambda: clock[0])
        stub.assert_no_pending_responses()
    secrets.forget()


def test_unreadable_ssm_says_what_to_check():
    secrets.forget()
    client = _ssm()
    with Stubber(client) as stub:
        stub.add_client_error("get_parameters_by_path", "AccessDeniedException")
        with pytest.raises(ConfigError, match="ssm:GetParametersByPath"):
            secrets.environment({"SECRETS_SSM_PATH": "/optinproof/prod/"},
                                    lambda region: client)
    with pytest.raises(ConfigError, match="start and end"):
        secrets.environment({"SECRETS_SSM_PATH": "optinproof/prod"})
    secrets.forget()


# -- the prod package: template, lint, and the zip invoked --------------------------------------

@pytest.fixture(scope="module")
def prod_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("prod-package")
    merge = work / "infra.json"
    merge.write_text(json.dumps(infra.template("prod", DOMAIN)))
    out = work / "out"
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1"}
    env.pop("AWS_PROFILE", None)
    env.pop("CONSENT_TABLE_STREAM_ARN", None)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
         "package", "--stage", "prod", "--merge-template", str(merge), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"chalice package failed:\n{done.stdout}\n{done.stderr}"
    return out


pytest_slow = pytest.mark.slow


@pytest_slow
def test_prod_template_passes_cfn_lint_and_wires_the_stream(prod_package: Path):
    template = json.loads((prod_package / "sam.json").read_text())
    resources = template["Resources"]
    stream = resources["OnTableChange"]["Properties"]["Events"][
        "OnTableChangeDynamodbEventSource"]["Properties"]["Stream"]
    assert stream == {"Fn::GetAtt": ["ConsentTable", "StreamArn"]}
    table = resources["ConsentTable"]["Properties"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert resources["ConsentTable"]["DeletionPolicy"] == "Retain"
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    for name in ("OnTableChangeRole", "ApiHandlerRole", "SyncSweepRole", "CampaignSweepRole"):
        documents = [p["PolicyDocument"] for p in resources[name]["Properties"]["Policies"]]
        assert documents == [policy], name
    timeouts = {name: r["Properties"]["Timeout"] for name, r in resources.items()
                if r["Type"] == "AWS::Serverless::Function"}
    assert timeouts["CampaignSweep"] == 900 and timeouts["APIHandler"] == 29
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(prod_package / "sam.json")],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, f"cfn-lint:\n{lint.stdout}\n{lint.stderr}"


PROBE = r"""
import json, sys, time
started = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
from chalicelib.web.blueprints import events
imported = time.perf_counter() - started
calls = json.loads(sys.argv[3])

class Context:
    function_name = "optinproof-prod-APIHandler"
    aws_request_id = "probe"
    memory_limit_in_mb = 1024
    def get_remaining_time_in_millis(self):
        return 10_000

page = app.app(calls["api"], Context())
sync = events.on_table_change(calls["stream"], Context())
print(json.dumps({"import_seconds": imported, "page": page, "sync": sync}))
"""


def _api_event(token: str) -> dict[str, Any]:
    """A recorded API Gateway (REST, proxy) event for GET /c/{token}, as Lambda gets it."""
    path = f"/c/{token}"
    return {
        "resource": "/c/{token}", "path": path, "httpMethod": "GET", "body": None,
        "isBase64Encoded": False,
        "headers": {"Host": "abc123.execute-api.eu-west-1.amazonaws.com",
                    "User-Agent": "Mozilla/5.0 (probe)", "Accept-Language": "en-GB,en;q=0.9",
                    "X-Forwarded-Proto": "https"},
        "multiValueHeaders": {}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": {"token": token},
        "stageVariables": None,
        "requestContext": {"resourceId": "abc", "resourcePath": "/c/{token}",
                           "httpMethod": "GET", "path": f"/api{path}", "stage": "api",
                           "accountId": "123456789012", "requestId": "req-1",
                           "identity": {"sourceIp": "198.51.100.7",
                                        "userAgent": "Mozilla/5.0 (probe)"}},
    }


def _stream_event(raw_item: dict[str, Any], arn: str) -> dict[str, Any]:
    """A DynamoDB stream event with the purpose state's new image, as Lambda gets it."""
    return {"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1", "eventSourceARN": arn,
        "dynamodb": {"ApproximateCreationDateTime": time.time(),
                     "Keys": {"pk": raw_item["pk"], "sk": raw_item["sk"]},
                     "NewImage": raw_item, "SequenceNumber": "100", "SizeBytes": 300,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"}}]}


@pytest_slow
def test_prod_zip_serves_the_page_and_syncs_from_a_clean_directory(prod_package: Path, act_env,
                                                                    act_sim, tmp_path: Path):
    extracted, runtime = tmp_path / "var-task", tmp_path / "runtime"
    with zipfile.ZipFile(prod_package / "deployment.zip") as archive:
        archive.extractall(extracted)
    runtime.mkdir()
    for name in LAMBDA_PROVIDED:
        (runtime / name).symlink_to(SITE_PACKAGES / name)

    act_sim.add_contact(firstName="Pia", lastName="Prod", emailAddress="pia@example.eu")
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    issued = rules.issue_link(ledger, settings, catalogue, "pia@example.eu", ["newsletter"])
    link, record = rules.open_link(ledger, settings, "confirm", issued.token)
    rules.decide(ledger, catalogue, link, record, {"newsletter": "accept"}, "en",
                   {"newsletter": catalogue.get("newsletter").text("en").sha256},
                   rules.RequestContext())
    raw = dynamodb_client().get_item(TableName=act_env["CONSENT_TABLE"], Key={
        "pk": {"S": f"SUBJ#{link.subject}"}, "sk": {"S": "PURPOSE#newsletter"}})["Item"]
    calls = {"api": _api_event(issued.token), "stream": _stream_event(
        raw, f"arn:aws:dynamodb:eu-west-1:123456789012:table/{act_env['CONSENT_TABLE']}/stream/x")}

    lambda_env = {  # what the prod stage sets, plus the secrets SSM would give
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
        "LANG": "C.UTF-8", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": "optinproof-prod-APIHandler",
        **{k: v for k, v in act_env.items() if k.startswith(("ACT_", "DYNAMODB_", "CONSENT_",
                                                              "LINK_", "SUBJECT_", "PUBLIC_"))},
        "MAIL_TRANSPORT": "none",
    }
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(extracted),
                           str(runtime), json.dumps(calls)],
                          cwd=tmp_path, env=lambda_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"the packaged app failed:\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    page = result["page"]
    assert page["statusCode"] == 200, page
    assert 'name="decision.newsletter"' in page["body"]
    assert result["sync"]["synced"] == 1, result["sync"]
    _, states = ledger.current(link.subject)
    assert states["newsletter"]["sync_status"] == "synced"
    contact = next(c for c in act_sim.contacts.values() if c.get("emailAddress") == "pia@example.eu")
    assert any(str(v).lower() == "accepted" for v in (contact.get("customFields") or {}).values())

    size = (prod_package / "deployment.zip").stat().st_size
    print(f"\nprod deployment.zip {size / MB:.1f} MB; cold import of app "
          f"{result['import_seconds'] * 1000:.0f} ms")


def test_the_policy_allows_every_dynamodb_call_the_code_makes():
    """Read the calls out of the code, so a new call cannot ship without its permission."""
    import re

    source = "\n".join((ROOT / "chalicelib" / "store" / name).read_text()
                       for name in ("ledger.py", "schema.py"))
    calls = set(re.findall(r'(?:_call|_conditional|_paged)\(\s*"([a-z_]+)"', source))
    calls |= set(re.findall(r"self\.client\.([a-z_]+)\(", source))
    # Transactions are authorised per item (Put/Update/Delete/ConditionCheckItem, and
    # GetItem for TransactGetItems); table creation and TTL are the operator's (cli infra
    # create), not the functions'.
    if "transact_get_items" in calls:
        calls = (calls - {"transact_get_items"}) | {"get_item"}
    calls -= {"transact_write_items", "create_table", "describe_time_to_live",
              "update_time_to_live"}
    needed = {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}
    allowed = {action for statement in infra.policy("prod", DOMAIN)["Statement"]
               for action in statement["Action"]}
    assert "dynamodb:BatchGetItem" in needed and needed <= allowed, needed - allowed


def test_secrets_held_stay_in_use_while_ssm_is_down():
    secrets.forget()
    client, clock, calls = _ssm(), [1000.0], []

    def factory(region: Any) -> Any:
        calls.append(clock[0])
        return client

    with Stubber(client) as stub:
        stub.add_response("get_parameters_by_path", {"Parameters": [
            {"Name": "/optinproof/prod/LINK_SECRET_KEYS", "Value": "held", "Type": "SecureString"}]},
            {"Path": "/optinproof/prod/", "WithDecryption": True, "Recursive": False})
        stub.add_client_error("get_parameters_by_path", "ThrottlingException")
        env = {"SECRETS_SSM_PATH": "/optinproof/prod/"}
        assert secrets.environment(env, factory, lambda: clock[0])["LINK_SECRET_KEYS"] == "held"
        clock[0] += 301  # expired, and SSM fails: the held secrets are still served
        assert secrets.environment(env, factory, lambda: clock[0])["LINK_SECRET_KEYS"] == "held"
        clock[0] += 10  # within the 30 s back-off: SSM is not asked again
        assert secrets.environment(env, factory, lambda: clock[0])["LINK_SECRET_KEYS"] == "held"
        stub.assert_no_pending_responses()
    assert len(calls) == 2
    secrets.forget()


def test_without_the_stream_arn_deploy_is_refused_and_package_warns(monkeypatch, capsys):
    """The placeholder ARN must never reach AWS unnoticed: `chalice deploy` refuses,
    `chalice package` without `--merge-template` warns; with the ARN both are quiet."""
    import chalice.cli  # noqa: F401  (what tells an operator's chalice command apart)

    from chalicelib.core.errors import ConfigError
    from chalicelib.web.blueprints import events

    monkeypatch.delenv("CONSENT_TABLE_STREAM_ARN", raising=False)
    with pytest.raises(ConfigError, match="CONSENT_TABLE_STREAM_ARN is not set"):
        events.stream_arn(["deploy", "--stage", "prod"])
    assert events.stream_arn(["package", "out"]) == events.PLACEHOLDER_STREAM_ARN
    assert "warning: CONSENT_TABLE_STREAM_ARN is not set" in capsys.readouterr().err
    events.stream_arn(["package", "--merge-template", "infra.json", "out"])
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("CONSENT_TABLE_STREAM_ARN", "arn:aws:dynamodb:eu-west-1:1:table/t/stream/s")
    assert events.stream_arn(["deploy"]).endswith("/stream/s")
