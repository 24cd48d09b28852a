"""The web tests share test_webconfig's PKI fixtures."""

from tests.web.test_webconfig import pki, test_ca

__all__ = ["pki", "test_ca"]
