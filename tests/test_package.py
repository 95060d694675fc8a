"""The Lambda package holds what the app loads, and the app runs from it alone.

``chalice package`` builds deployment.zip (downloading Lambda wheels from PyPI the
first time; later runs reuse .chalice/deployments/). The zip must carry app.py,
chalicelib/, the templates, the compiled translations and the purpose catalogue
(these three reach the package through vendor/ symlinks) and the runtime
dependencies, but not boto3/botocore, which the Lambda runtime provides.

Then the zip is extracted and the app is imported and invoked like Lambda would,
in an isolated interpreter that sees only the extracted package plus boto3 and
its dependencies (standing in for the Lambda runtime's copy).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.package import LAMBDA_PROVIDED, MB, SITE_PACKAGES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = [
    "app.py", "catalogue.toml", "templates/base.html", "templates/confirm.html",
    "templates/error.html", "templates/link_error.html", "templates/static/page.css",
    "templates/static/campaign-progress.js", "templates/admin_campaign.html",
    "templates/static/resize.js", "templates/fonts/DejaVuSans.ttf", "templates/fonts/LICENSE",
    "locales/fr/LC_MESSAGES/messages.mo",
    *sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "chalicelib").glob("*.py")),
]
RUNTIME_DEPS = ("jinja2", "markupsafe", "itsdangerous", "email_validator", "babel")
IN_LAMBDA_RUNTIME = ("boto3", "botocore", "s3transfer")
NOT_SHIPPED = ("tests/", ".venv/", "node_modules/", "devstack/", "bench/", ".chalice/",
               "vendor/", "scripts/")


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("chalice-package") / "out"
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1"}
    env.pop("AWS_PROFILE", None)
    command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
               "package", "--stage", "dev", str(outdir)]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`chalice package` took more than {exc.timeout}s (downloading wheels "
                    f"from PyPI?): {exc.stdout!r} {exc.stderr!r}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"`chalice package` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}",
                    pytrace=False)
    assert (outdir / "deployment.zip").is_file(), f"no deployment.zip in {sorted(outdir.iterdir())}"
    return outdir


@pytest.fixture(scope="module")
def deployment_zip(package_dir: Path) -> Path:
    return package_dir / "deployment.zip"


def test_zip_holds_the_app_its_files_and_runtime_deps_but_not_boto3(deployment_zip: Path):
    with zipfile.ZipFile(deployment_zip) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None, "a member of deployment.zip is corrupt"
        missing = [name for name in PROJECT_FILES if name not in names]
        assert not missing, f"deployment.zip lacks {missing}: check vendor/ symlinks"
        stale = [name for name in PROJECT_FILES
                 if archive.read(name) != (ROOT / name).read_bytes()]
        assert not stale, f"deployment.zip holds other versions of {stale}"

    tops = {name.split("/", 1)[0] + "/" for name in names if "/" in name}
    absent = [dep for dep in RUNTIME_DEPS if f"{dep}/" not in tops]
    assert not absent, f"runtime dependencies missing from deployment.zip: {absent}"
    assert "jinja2/ext.py" in names and "babel/locale-data/fr.dat" in names
    assert "chalice/app.py" in names  # Chalice ships its own runtime module

    shipped = [top for top in tops if top.rstrip("/") in IN_LAMBDA_RUNTIME]
    assert not shipped, f"{shipped} are in the Lambda runtime and must not be packaged"
    leaked = sorted({prefix for prefix in NOT_SHIPPED for name in names if name.startswith(prefix)})
    assert not leaked, f"development files were packaged: {leaked}"

    size = deployment_zip.stat().st_size
    unzipped = sum(info.file_size for info in zipfile.ZipFile(deployment_zip).infolist())
    print(f"\ndeployment.zip: {size / MB:.1f} MB ({unzipped / MB:.1f} MB unzipped)")
    # Lambda's limits for a directly uploaded package: 50 MB zipped, 250 MB unzipped.
    assert size < 50 * MB and unzipped < 250 * MB


def test_sam_template_points_lambda_at_the_app(package_dir: Path):
    template = json.loads((package_dir / "sam.json").read_text())
    functions = {name: resource["Properties"] for name, resource in template["Resources"].items()
                 if resource["Type"] == "AWS::Serverless::Function"}
    handlers = {props["Handler"] for props in functions.values()}
    # Blueprint handlers are imported by their module's own name (Chalice's rule).
    events = "chalicelib.web.blueprints.events"
    assert {"app.app", f"{events}.on_table_change", f"{events}.sync_sweep"} <= handlers
    # Chalice deploys the runtime of the Python it runs under (make picks 3.12 first).
    running = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert {props["Runtime"] for props in functions.values()} == {running}
    assert all(props["CodeUri"] == "./deployment.zip" for props in functions.values())
    # The catch-all is one more resource: the real routes keep theirs.
    paths = set(template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"])
    assert {"/{proxy+}", "/", "/c/{token}", "/signup/{form_id}", "/health"} <= paths, paths
    variables = functions["APIHandler"]["Environment"]["Variables"]
    assert variables["CONSENT_TABLE"] == "optinproof-dev"


# Run by an isolated interpreter (-I -S: no site-packages, no PYTHON* variables, no
# current directory on sys.path) that sees only the two directories given in argv.
PROBE = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]

import app
from chalicelib.consent.subjects import mail_address
from chalicelib.core.i18n import format_moment, translations
from chalicelib.web.render import environment, stylesheet

class Context:
    function_name = "optinproof-dev-APIHandler"
    aws_request_id = "probe"
    memory_limit_in_mb = 256
    def get_remaining_time_in_millis(self):
        return 10_000

def invoke(resource, path, params=None, headers=None):
    event = {
        "resource": resource, "path": path, "httpMethod": "GET", "body": None,
        "isBase64Encoded": False, "headers": headers or {}, "multiValueHeaders": {},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": params, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": "GET", "path": path,
                           "stage": "api", "identity": {"sourceIp": "203.0.113.9"}},
    }
    return app.app(event, Context())

template = environment("fr").get_template("confirm.html")
health = invoke("/health", "/health")
bad_link = invoke("/c/{token}", "/c/not-a-real-link", {"token": "not-a-real-link"},
                  {"accept-language": "fr-FR,fr;q=0.9", "user-agent": "probe"})
# Babel and email-validator load on first use (cold start): use them, as a mail would.
moment_fr = format_moment("2026-11-29T14:03:12.345Z", "fr")
address = mail_address("Ann@Example.EU")
# API Gateway's greedy path: any depth no other resource claims.
missing = invoke("/{proxy+}", "/no/such/page", {"proxy": "no/such/page"},
                 {"accept-language": "fr-FR,fr;q=0.9"})
# A PDF (fpdf2, fontTools and the fonts from the package), as the first download does.
from chalicelib.consent import register
from chalicelib.consent.catalogue import load_catalogue
from chalicelib.core.settings import PACKAGE_ROOT
register_pdf = register.render(load_catalogue(PACKAGE_ROOT / "catalogue.toml"), "fr")
print(json.dumps({
    "app_name": app.app.app_name,
    "moment_fr": moment_fr,
    "address": address,
    "template": template.filename,
    "accept_fr": translations("fr").gettext("Accept"),
    "stylesheet": stylesheet()[0][:200],
    "health": health,
    "bad_link": bad_link,
    "missing": missing,
    "register_pdf": [register_pdf[:5].decode(), len(register_pdf)],
    "modules": {name: getattr(module, "__file__", None) for name, module in
                sorted(sys.modules.items()) if getattr(module, "__file__", None)},
}))
"""


@pytest.fixture(scope="module")
def lambda_root(deployment_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The extracted package, and a directory standing in for the runtime's boto3."""
    task = tmp_path_factory.mktemp("lambda")
    extracted, runtime = task / "var-task", task / "runtime"
    with zipfile.ZipFile(deployment_zip) as archive:
        archive.extractall(extracted)
    runtime.mkdir()
    for name in LAMBDA_PROVIDED:
        source = SITE_PACKAGES / name
        assert source.exists(), f"{source} is missing from the venv (needed to stand in for Lambda)"
        (runtime / name).symlink_to(source)
    return extracted, runtime


def test_packaged_app_imports_and_renders_from_the_zip_alone(lambda_root: tuple[Path, Path],
                                                             tmp_path: Path):
    extracted, runtime = lambda_root
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "probe", "AWS_SECRET_ACCESS_KEY": "probe",
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        # Nothing listens there: the probe must not need the table at all.
        "DYNAMODB_ENDPOINT": "http://127.0.0.1:9", "DYNAMODB_TIMEOUT": "1",
        "CONSENT_TABLE": "optinproof-probe",
        "LINK_SECRET_KEYS": "probe-" + "k" * 40, "SUBJECT_PEPPER": "probe-" + "p" * 40,
        "PUBLIC_BASE_URL": "https://consent.example.eu",
    }
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(extracted), str(runtime)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"the packaged app failed to load:\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["app_name"] == "optinproof"
    assert Path(result["template"]) == extracted / "templates" / "confirm.html"
    assert result["accept_fr"] == "Accepter", "the compiled French catalogue was not found"
    assert result["stylesheet"] == (ROOT / "templates/static/page.css").read_text()[:200]
    assert result["moment_fr"].startswith("29 nov. 2026"), "Babel's French data is missing"
    assert result["address"] == "Ann@example.eu"

    health = result["health"]
    assert health["statusCode"] == 200, health
    assert json.loads(health["body"]) == {"status": "ok",
                                          "purposes": ["events", "newsletter", "promotions"]}

    page = result["bad_link"]
    assert page["statusCode"] == 400, page
    assert '<html lang="fr">' in page["body"] and "Ce lien" in page["body"]
    assert page["headers"]["Content-Security-Policy"].startswith("default-src 'none'")

    missing = result["missing"]
    assert missing["statusCode"] == 404, missing
    assert '<html lang="fr">' in missing["body"] and "Cette page" in missing["body"]
    assert missing["headers"]["Referrer-Policy"] == "no-referrer"

    # Every module came from the package, except boto3 & co. from the runtime stand-in.
    modules = {name: Path(path) for name, path in result["modules"].items()}
    assert result["register_pdf"][0] == "%PDF-" and result["register_pdf"][1] > 10_000
    for name in ("app", "chalice", "chalicelib", "jinja2", "markupsafe", "babel",
                 "itsdangerous", "email_validator", "fpdf", "fontTools"):
        assert modules[name].is_relative_to(extracted), f"{name} loaded from {modules[name]}"
    for name in ("boto3", "botocore"):
        assert modules[name].is_relative_to(runtime), f"{name} loaded from {modules[name]}"
    from_venv = sorted(name for name, path in modules.items() if path.is_relative_to(SITE_PACKAGES))
    assert not from_venv, f"modules leaked in from the venv: {from_venv}"
