"""What stands in for the Lambda runtime when the package is run outside Lambda."""
from __future__ import annotations

import sysconfig
from pathlib import Path

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
#: What stands in for the Lambda runtime's boto3: boto3 and what it imports.
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
MB = 1024 * 1024
