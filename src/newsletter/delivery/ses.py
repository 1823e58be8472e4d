"""Amazon SES v2 through botocore: one SendEmail per message, with our own MIME.

SES's bulk API needs stored templates, so each message goes as ``Raw`` content
(the same RFC 5322 bytes the outbox writes), in parallel across workers.
Credentials come from the standard AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, an AWS profile or role), never from newsletter.toml.
botocore is an optional extra: ``pip install 'newsletter[ses]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, CredentialsError, DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import OneAtATime
from .retry import RetryPolicy, TryAgain

_CREDENTIALS = {
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDeniedException",
    "AccessDenied",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
}
_STOP = {
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExistException",
    "NotFoundException",
}
_THROTTLED = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "LimitExceededException",
}


class SESTransport(OneAtATime):
    name = "ses"
    provider = "Amazon SES"  # its API takes ASCII local parts only (SMTPUTF8 is not offered)
    max_batch = 50  # messages a worker sends one by one before the batch is settled

    def __init__(
        self,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        configuration_set: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(batch_size)
        try:
            import botocore.config
            import botocore.session
        except ImportError:
            raise ConfigError(
                "The ses transport needs botocore, which is not installed.",
                "Install it with: pip install 'newsletter[ses]'",
            ) from None
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ConfigError(
                "The SES region is not set.",
                'Set region = "eu-west-1" (your SES region) under [delivery] in newsletter.toml.',
            )
        session = botocore.session.get_session()
        if session.get_credentials() is None:
            raise ConfigError(
                "No AWS credentials were found for SES.",
                "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for an IAM "
                "identity allowed to call ses:SendEmail.",
            )
        config = botocore.config.Config(
            # we retry ourselves; botocore's max_attempts counts retries, not attempts,
            # and its retries would repeat a timed-out or dropped SendEmail
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=32,
        )
        self.client = session.create_client(
            "sesv2", region_name=region, endpoint_url=base_url or None, config=config
        )
        self.retry = RetryPolicy(max_retries, sleep)
        self.configuration_set = configuration_set

    def send_one(self, message: OutgoingMessage) -> SendResult:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        sid = message.recipient.subscriber_id
        compiled = message.factory.compiled
        request: dict[str, Any] = {
            "FromEmailAddress": message.factory.envelope_sender,
            "Destination": {"ToAddresses": [message.to_address]},
            "Content": {"Raw": {"Data": message.as_bytes()}},
            "EmailTags": [
                {"Name": "campaign", "Value": _tag(compiled.slug)},
                {"Name": "subscriber", "Value": str(sid)},
            ],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set

        def attempt(_number: int) -> SendResult:
            try:
                answer = self.client.send_email(**request)
            except (ReadTimeoutError, ConnectionClosedError) as exc:
                return SendResult(
                    sid,
                    DeliveryStatus.UNKNOWN,
                    error=f"SES: the outcome is unknown ({exc.__class__.__name__})",
                )
            except EndpointConnectionError as exc:
                code = "EndpointConnectionError"
                raise TryAgain(f"SES answered {code}", outcome=(code, str(exc))) from None
            except ClientError as exc:
                refusal = exc.response
            else:
                if not answer.get("MessageId"):  # e.g. a 200 whose body was not JSON
                    return SendResult(
                        sid,
                        DeliveryStatus.UNKNOWN,
                        error="SES: the outcome is unknown (an answer without a MessageId)",
                    )
                return SendResult(sid, DeliveryStatus.SENT, message_id=answer["MessageId"])
            return self._refused(sid, refusal)

        def give_up(last: TryAgain, attempts: int) -> SendResult:
            code, text = last.outcome
            raise DeliveryError(
                f"SES kept failing ({code}: {text}); stopped after {attempts} attempts.",
                "Messages without a result were not sent. Run the same send again later; "
                "SES advises waiting up to 10 minutes after throttling.",
            )

        return self.retry.run(attempt, give_up, self.notify_retry)

    @staticmethod
    def _refused(sid: int, response: dict[str, Any]) -> SendResult:
        """SES's refusal as a result; ``TryAgain`` for throttling and its own errors."""
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        text = str(error.get("Message", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in _CREDENTIALS or status == 403:
            raise CredentialsError(
                f"SES refused the credentials ({code}: {text}).",
                "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that the identity "
                "may call ses:SendEmail in this region.",
            )
        if code in _STOP:
            raise DeliveryError(
                f"SES cannot send for this account ({code}: {text}).",
                "Fix it in the SES console, then run the same send again.",
            )
        if code == "MessageRejected" or (status == 400 and code not in _THROTTLED):
            bad = "address" in text.lower() or "identit" in text.lower()
            return SendResult(
                sid,
                DeliveryStatus.REJECTED if code == "MessageRejected" else DeliveryStatus.FAILED,
                error=f"SES {code}: {text}",
                suppress=bad and "not verified" not in text.lower(),
                raw=response.get("Error"),
            )
        if code not in _THROTTLED and status < 500:
            return SendResult(sid, DeliveryStatus.FAILED, error=f"SES {code}: {text}")
        raise TryAgain(f"SES answered {code}", outcome=(code, text))

    def close(self) -> None:
        self.client.close()


def _tag(value: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in value)[:256]
