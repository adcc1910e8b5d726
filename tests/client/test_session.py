"""Authorization, session options (proxy, user agent, TLS), reprs and secrets."""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.abc import TaskGroup
from anyio.streams.tls import TLSListener

from b2fs import __version__
from b2fs.b2 import (
    B2Client,
    B2Error,
    CertificateError,
    ClientEvent,
    NetworkError,
    RetryPolicy,
    Unauthorized,
)
from b2fs.emulator.process import LocalServer

from .helpers import FAST_RETRY, make_client_for, unique_bucket_name
from .relay import lossy_relay


async def test_authorize_exposes_account(psrv: LocalServer) -> None:
    async with make_client_for(psrv) as c:
        assert c.account is None
        a = await c.authorize()
        assert c.account is a
        assert a.api_url.startswith("http://127.0.0.1:")
        assert a.download_url.startswith("http://127.0.0.1:")
        assert "writeFiles" in a.capabilities and "listBuckets" in a.capabilities
        assert a.allowed_buckets is None and a.name_prefix is None
        assert a.absolute_minimum_part_size == 1000
        assert a.recommended_part_size == 4000
        assert psrv.counters()["calls"]["b2_authorize_account"] == 1


async def test_first_call_authorizes_lazily(psrv: LocalServer) -> None:
    async with make_client_for(psrv) as c:
        await c.list_buckets()
        assert c.account is not None
        await c.list_buckets()
    assert psrv.counters()["calls"]["b2_authorize_account"] == 1


async def test_bad_key_is_unauthorized_without_retries(psrv: LocalServer) -> None:
    async with B2Client(psrv.key_id, "not-the-key", psrv.realm, retry=FAST_RETRY) as c:
        with pytest.raises(Unauthorized) as err:
            await c.authorize()
    assert err.value.status == 401
    assert "not-the-key" not in str(err.value) and "not-the-key" not in repr(err.value)
    assert c.stats.retries == 0


async def test_realm_names_map_to_urls() -> None:
    from b2fs.b2 import realm_url

    assert realm_url("production") == "https://api.backblazeb2.com"
    assert realm_url("http://127.0.0.1:9/") == "http://127.0.0.1:9"


async def test_secrets_stay_out_of_reprs_logs_errors_and_events(
    psrv: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[ClientEvent] = []
    psrv.set_faults([{"call": "b2_upload_file", "sequence": ["503", "expire_token"]}])
    async with make_client_for(psrv, on_event=events.append) as c:
        account = await c.authorize()
        b = await c.create_bucket(unique_bucket_name("sec"))
        await c.upload_bytes(b.bucket_id, "f", b"x")  # retried, then a new URL
        url = await c.get_upload_url(b.bucket_id)
        auth = await c.get_download_authorization(b.bucket_id, "f", 60)
        psrv.expire_tokens()
        await c.list_file_names_page(b.bucket_id)  # re-authorizes
        errors = []
        try:
            await c.get_file_info("nope")
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        texts = [repr(c), repr(account), repr(url), repr(auth), repr(c.account), caplog.text]
        texts += [str(e) + repr(e) for e in errors] + [repr(e) for e in events]
        secrets = [
            psrv.key,
            account.authorization_token,
            c.account.authorization_token,
            url.authorization_token,
            auth.authorization_token,
        ]
    assert c.stats.reauthorizations == 1 and c.stats.retries >= 1 and errors
    assert any(e.kind == "retry" for e in events)
    assert any(e.kind == "reauthorize" for e in events)
    assert account.authorization_token != c.account.authorization_token
    for secret in secrets:
        for text in texts:
            assert secret not in text


async def test_user_agent_and_keep_alive_through_a_proxy(psrv: LocalServer) -> None:
    """An HTTP proxy carries every call; one client reuses its connections."""
    async with lossy_relay(psrv.realm) as proxy, make_client_for(psrv, proxy=proxy.url) as c:
        b = await c.create_bucket(unique_bucket_name("px"))
        for i in range(5):
            await c.upload_bytes(b.bucket_id, f"f{i}", b"data")
        assert len(proxy.heads) >= 7
        assert all(f"b2fs/{__version__}".encode() in h for h in proxy.heads)
        assert all(h.split(b" ")[1].startswith(b"http://127.0.0.1:") for h in proxy.heads)
        assert proxy.connections <= 2  # keep-alive: not one connection per call


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=b2fs test CA")  # fmt: skip
    for who in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out", f"{who}.csr",
            "-subj", f"/CN={who}")  # fmt: skip
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.pem", "-days", "1", "-extfile", "ext.cnf")  # fmt: skip
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


async def test_ca_bundle_and_client_certificate(
    psrv: LocalServer, tls_files: dict[str, Path]
) -> None:
    """A TLS terminator that demands a client certificate, in front of the server."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls_files["ca.pem"])
    ctx.load_cert_chain(tls_files["server.pem"], tls_files["server.key"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    upstream_port = int(psrv.realm.rsplit(":", 1)[1])

    async def pump(a: anyio.abc.ByteStream, b: anyio.abc.ByteStream, tg: TaskGroup) -> None:
        try:
            async for data in a:
                await b.send(data)
        finally:
            tg.cancel_scope.cancel()

    async def handle(stream: anyio.abc.ByteStream) -> None:
        try:  # a failure here must not end the listener
            up = await anyio.connect_tcp("127.0.0.1", upstream_port)
            async with stream, up, anyio.create_task_group() as tg:
                tg.start_soon(pump, stream, up, tg)
                tg.start_soon(pump, up, stream, tg)
        except Exception:  # noqa: BLE001
            pass

    listener = TLSListener(
        await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0), ctx
    )
    port = listener.listener.extra(anyio.abc.SocketAttribute.local_port)
    realm = f"https://127.0.0.1:{port}"

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        cert = (str(tls_files["client.pem"]), str(tls_files["client.key"]))
        async with B2Client(
            psrv.key_id, psrv.key, realm, retry=FAST_RETRY, ca_bundle=str(tls_files["ca.pem"]),
            client_cert=cert,
        ) as c:  # fmt: skip
            account = await c.authorize()
            assert account.account_id
            # a download's kept connection over TLS, with the client certificate (the
            # server names its URLs http://...: set up directly, download through TLS)
            data = os.urandom(50_000)
            async with make_client_for(psrv) as plain:
                b = await plain.create_bucket(unique_bucket_name("tls"))
                f = await plain.upload_bytes(b.bucket_id, "f", data)
            pool = c._lean_downloads()
            assert pool is not None
            resp = await pool.get(
                f"{realm}/b2api/v4/b2_download_file_by_id?fileId={f.file_id}",
                {"Authorization": account.authorization_token, "Range": "bytes=10-49999"},
            )
            assert resp.status == 206
            buf = bytearray(49_990)
            got = 0
            while n := await resp.readinto(memoryview(buf)[got:]):
                got += n
            assert got == len(buf) and bytes(buf) == data[10:] and resp.complete
        async with B2Client(psrv.key_id, psrv.key, realm, retry=FAST_RETRY) as c:
            with pytest.raises(CertificateError):  # the system CAs do not know ours
                await c.authorize()
            assert c.stats.retries == 0
        async with B2Client(
            psrv.key_id, psrv.key, realm, retry=FAST_RETRY, ca_bundle=str(tls_files["ca.pem"])
        ) as c:
            with pytest.raises(NetworkError):  # no client certificate
                await c.authorize()
        tg.cancel_scope.cancel()


async def test_http2_option(psrv: LocalServer) -> None:
    """With h2 installed, HTTP/2 is offered (this server answers HTTP/1.1); without it
    the option fails clearly."""
    try:
        import h2  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="h2"):
            async with make_client_for(psrv, http2=True) as c:
                await c.authorize()
    else:
        async with make_client_for(psrv, http2=True) as c:
            assert (await c.authorize()).account_id


async def test_raw_call_for_any_api_name(client: B2Client, psrv: LocalServer) -> None:
    account = await client.authorize()
    d = await client.call("b2_list_buckets", {"accountId": account.account_id, "bucketName": None})
    assert isinstance(d["buckets"], list)
    with pytest.raises(B2Error) as err:
        await client.call("b2_no_such_call", {})
    assert err.value.status in (400, 404) and client.stats.retries == 0


async def test_nothing_listening_is_a_network_error_after_bounded_retries() -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01)
    async with B2Client("id", "key", f"http://127.0.0.1:{port}", retry=policy) as c:
        with pytest.raises(NetworkError) as err:
            await c.authorize()
    assert err.value.attempts == 3 and not err.value.sent and c.stats.retries == 2
