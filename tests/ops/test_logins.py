"""Logins: failed logins counted per account and per client address in Redis (django-axes), a locked
login refused with 429 and a page that says so, one log line per failed or throttled login with the
client's address, a cap on password checks at once, and logins that keep working without Redis."""

from __future__ import annotations

import importlib.metadata
import threading

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import call_command
from django.db import connections
from django.test import Client, RequestFactory

from apps.ops import axes_internals
from apps.ops.client_address import client_address

PASSWORD = "right-password-1"
LOGIN_FORMS = ["/accounts/login/", "/admin/login/"]
LOCKED_MESSAGE = "Too many failed logins"


@pytest.fixture
def alice(django_user_model, db):
    return django_user_model.objects.create_user("alice", password=PASSWORD, is_staff=True)


def log_in(client: Client, url: str, username: str, password: str, address: str = "127.0.0.1", **headers):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


def login_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "apps.ops.logins"]


@pytest.mark.parametrize("url", LOGIN_FORMS)
def test_five_failures_lock_the_login_and_the_right_password_is_refused(client, alice, url):
    for _ in range(4):
        response = log_in(client, url, "alice", "wrong")
        assert response.status_code == 200 and LOCKED_MESSAGE not in response.content.decode()
    fifth = log_in(client, url, "alice", "wrong")
    assert fifth.status_code == 429 and LOCKED_MESSAGE in fifth.content.decode()
    right = log_in(client, url, "alice", PASSWORD)
    page = right.content.decode()
    assert right.status_code == 429 and not logged_in(right)
    assert LOCKED_MESSAGE in page and "refused for 15 minutes" in page


def test_an_operator_unlocks_an_account_at_once(client, alice):
    for number in range(5):
        log_in(client, "/accounts/login/", "alice", "wrong", address=f"198.51.100.{number + 1}")
    call_command("axes_reset_username", "alice")
    assert logged_in(log_in(client, "/accounts/login/", "alice", PASSWORD, address="203.0.113.50"))


def test_failures_from_one_address_lock_every_account_from_it(client, alice):
    for number in range(5):
        log_in(client, "/accounts/login/", f"guess{number}", "wrong", address="198.51.100.7")
    assert log_in(client, "/accounts/login/", "alice", PASSWORD, address="198.51.100.7").status_code == 429
    assert logged_in(log_in(Client(), "/accounts/login/", "alice", PASSWORD, address="198.51.100.8"))


def test_failures_against_one_account_lock_it_from_every_address(client, alice):
    for number in range(5):
        log_in(client, "/accounts/login/", "alice", "wrong", address=f"198.51.100.{number + 1}")
    assert log_in(client, "/admin/login/", "alice", PASSWORD, address="203.0.113.50").status_code == 429


def test_a_successful_login_resets_the_accounts_count(alice):
    for round_ in range(2):  # from addresses of their own: only the account's count is at stake
        client = Client()
        for number in range(4):
            address = f"198.51.{round_}.{number + 1}"
            assert log_in(client, "/accounts/login/", "alice", "wrong", address=address).status_code == 200
        assert logged_in(log_in(client, "/accounts/login/", "alice", PASSWORD, address=f"203.0.113.{round_}"))


def test_a_successful_login_does_not_clear_the_addresss_failures(client, alice, django_user_model):
    # One client trying passwords on other accounts, logging into its own between tries.
    address = "198.51.100.99"
    for number in range(4):
        log_in(client, "/accounts/login/", f"victim{number}", "wrong", address=address)
    assert logged_in(log_in(Client(), "/accounts/login/", "alice", PASSWORD, address=address))
    log_in(client, "/accounts/login/", "victim9", "wrong", address=address)  # the fifth from it
    assert log_in(Client(), "/accounts/login/", "alice", PASSWORD, address=address).status_code == 429


def test_failed_and_throttled_logins_are_logged_with_the_peer_address_by_default(client, alice, caplog):
    for _ in range(6):
        log_in(
            client, "/accounts/login/", "alice", "wrong", address="10.1.2.3", HTTP_X_FORWARDED_FOR="1.1.1.1"
        )
    lines = login_lines(caplog)
    assert lines[0] == "login failed for 'alice' from 10.1.2.3: failure 1 of 5"
    assert lines[4] == "login failed for 'alice' from 10.1.2.3: failure 5 of 5, locked out for 15 min"
    assert lines[5] == "login throttled for 'alice' from 10.1.2.3: locked out for 15 min"
    assert len(lines) == 6
    assert {r.levelname for r in caplog.records if r.name == "apps.ops.logins"} == {"WARNING"}
    assert not [r for r in caplog.records if r.name.startswith("axes")]


def test_behind_a_trusted_proxy_the_forwarded_address_is_logged_and_locked(client, alice, caplog, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    ingress = "10.0.0.9"
    for _ in range(5):
        log_in(
            client,
            "/accounts/login/",
            "bob",
            "wrong",
            address=ingress,
            HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5",
        )
    assert (
        login_lines(caplog)[-1]
        == "login failed for 'bob' from 203.0.113.5: failure 5 of 5, locked out for 15 min"
    )
    # Another client behind the same ingress is not locked by that address's failures.
    other = log_in(
        Client(), "/accounts/login/", "alice", PASSWORD, address=ingress, HTTP_X_FORWARDED_FOR="203.0.113.6"
    )
    assert logged_in(other)


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "10.0.0.9"),
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),
        (2, "6.6.6.6, 203.0.113.5", "6.6.6.6"),
        (2, "203.0.113.5", "10.0.0.9"),  # fewer entries than proxies: not through them
        (1, "not-an-address", "10.0.0.9"),
        (1, "", "10.0.0.9"),
    ],
)
def test_client_address_believes_only_what_trusted_proxies_appended(settings, count, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


class BlockingHasher(MD5PasswordHasher):
    """A password hash that lasts until the test releases it, counting the hashes under way."""

    algorithm = "blocking_md5"
    entered = threading.Semaphore(0)
    release = threading.Event()
    running = 0

    def encode(self, password, salt):
        BlockingHasher.running += 1
        BlockingHasher.entered.release()
        try:
            assert BlockingHasher.release.wait(10), "the test never released the hash"
            return super().encode(password, salt)
        finally:
            BlockingHasher.running -= 1


def test_a_login_without_a_free_password_check_is_refused_with_a_message(settings, db, caplog):
    settings.PASSWORD_HASHERS = [f"{__name__}.BlockingHasher"]
    settings.LOGIN_HASHING_CONCURRENCY = 1
    settings.LOGIN_HASHING_WAIT_SECONDS = 0.05
    BlockingHasher.release.clear()
    answers = []

    def first_login():
        try:
            answers.append(log_in(Client(), "/accounts/login/", "nobody", "wrong"))
        finally:
            connections.close_all()

    first = threading.Thread(target=first_login)
    first.start()
    try:
        assert BlockingHasher.entered.acquire(timeout=10), "the first login never reached the hash"
        second = log_in(Client(), "/accounts/login/", "nobody", "wrong", address="10.9.9.9")
        assert BlockingHasher.running == 1
    finally:
        BlockingHasher.release.set()
        first.join(10)
    assert second.status_code == 200
    assert "The server is busy checking other logins" in second.content.decode()
    assert answers[0].status_code == 200 and "correct username and password" in answers[0].content.decode()
    assert "login refused for 'nobody' from 10.9.9.9: every password check slot of this process is busy" in (
        login_lines(caplog)
    )


@pytest.mark.servers  # a Redis of its own, stopped
def test_logins_work_and_nothing_raises_while_redis_is_stopped(own_redis, alice, caplog):
    client = Client()
    own_redis.stop()
    for _ in range(7):
        assert log_in(client, "/accounts/login/", "alice", "wrong").status_code == 200
    assert "login failed for 'alice' from 127.0.0.1: not counted: Redis unreachable" in login_lines(caplog)
    assert logged_in(log_in(client, "/accounts/login/", "alice", PASSWORD))


def test_the_axes_adapter_names_the_installed_version():
    assert axes_internals.WRITTEN_FOR == f"django-axes=={importlib.metadata.version('django-axes')}"
