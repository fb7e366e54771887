"""Black-box tests of issue 27, item 2: signed checkpoints anchor the audit
trail outside the database.

The review's forgery (test_tamper.FORGERY: grant, disable the trigger, edit
the offer, recompute the digest, enable the trigger) fails at the grant for
the service's own login (test_tamper). A superuser gets through every step,
recomputes every later digest of the chain and the case row too, and plain
`arbiter verify` passes; `verify --checkpoints` with the log a server wrote
and its public key exits 1 naming the case. Checkpoint lines edited, signed
by another key, dropped, and a key rotation; the endpoint's checkpoint
checked with Python's own Ed25519 (python3-cryptography).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import helpers as h
from test_tamper import FORGERY, offer_case

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:   # pragma: no cover - make deps installs python3-cryptography
    Ed25519PublicKey = None


def make_key(arbiter_bin: str, d: Path, name: str) -> tuple[Path, Path]:
    """`arbiter checkpoint-key --out` -> (private PEM path, public PEM path)."""
    priv, pub = d / f"{name}.pem", d / f"{name}.pub.pem"
    cp = h.run_bin(arbiter_bin, ["checkpoint-key", "--out", str(priv)])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "BEGIN PUBLIC KEY" in cp.stdout and "key id" in cp.stderr, cp
    pub.write_text(cp.stdout)
    assert priv.stat().st_mode & 0o077 == 0, oct(priv.stat().st_mode)
    return priv, pub


def ckpt_env(priv: Path, log: Path) -> dict:
    return {"ARBITER_CHECKPOINT_KEY_FILE": str(priv), "ARBITER_CHECKPOINT_LOG": str(log),
            "ARBITER_CHECKPOINT_INTERVAL": "1"}


def wait_anchored(db: h.TestDB, cid: str, timeout: float = 20) -> None:
    """Until a checkpoint's leaves name the case's last event."""
    lit = h.quote_literal(cid)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = h.psql_value(db.admin_url,
                           f"SELECT (SELECT max(seq) FROM checkpoint_leaves WHERE case_id = {lit})"
                           f" = (SELECT max(seq) FROM case_events WHERE case_id = {lit});")
        if got == "t":
            return
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint anchored case {cid} within {timeout}s")


def verify(arbiter_bin: str, db: h.TestDB, log: Path | None, *pubs: Path,
           extra: list[str] | None = None) -> tuple[int, str]:
    args = ["verify"]
    if log is not None:
        args += ["--checkpoints", str(log)]
    for p in pubs:
        args += ["--public-key", str(p)]
    cp = h.run_bin(arbiter_bin, args + (extra or []), database_url=db.service_url)
    return cp.returncode, cp.stdout + cp.stderr


def lines(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]


def signed_text(c: dict) -> bytes:
    """The documented canonical form (README, Security; openapi Checkpoint)."""
    return (f"arbiter-checkpoint/{c['v']}\nno {c['no']}\nat {c['at']}\nkey {c['key_id']}\n"
            f"leaves {c['leaves']}\nroot {c['root']}\nprev {c['prev']}\n").encode()


def test_a_superuser_rewrite_passes_verify_but_not_the_checkpoints(arbiter_bin, make_db,
                                                                    make_server, tmp_path):
    db = make_db()
    priv, pub = make_key(arbiter_bin, tmp_path, "k1")
    log = tmp_path / "checkpoints.log"
    s = make_server(db.service_url, name="ckpt", env=ckpt_env(priv, log))
    c = offer_case(s, db)
    cid = c["id"]
    # a later event on the chain, so the rewrite must recompute past the edit
    r = s.post(f"/v1/cases/{cid}/actions", {"action": "escalate", "statement": "the offer is too low"},
               headers={"If-Match": '"2"'})
    assert r.status == 200, r
    wait_anchored(db, cid)
    assert verify(arbiter_bin, db, None)[0] == 0
    rc, text = verify(arbiter_bin, db, log, pub)
    assert rc == 0 and "every signature, link, root and leaf holds" in text, text

    # stopped, so that no event lands on the chain while it is rewritten
    assert s.stop() == 0
    lit = h.quote_literal(cid)
    offer_seq = int(h.psql_value(db.admin_url, "SELECT seq FROM case_events"
                                 f" WHERE case_id = {lit} AND action = 'offer';"))
    last_seq = int(h.psql_value(db.admin_url,
                                f"SELECT max(seq) FROM case_events WHERE case_id = {lit};"))
    # the review's forgery, as the superuser: every step goes through
    grant, disable, edit, recompute, enable = (x.replace("{cid}", cid) for x in FORGERY)
    h.psql(db.admin_url, ";\n".join([grant, disable, edit, recompute]) + ";")
    # ...and every later digest of the chain, and the row, so nothing else differs
    for seq in range(offer_seq + 1, last_seq + 1):
        h.psql(db.admin_url,
               f"UPDATE case_events e SET prev_hash = p.hash FROM case_events p"
               f" WHERE e.case_id = {lit} AND e.seq = {seq} AND p.case_id = e.case_id"
               f" AND p.seq = e.seq - 1;"
               f"UPDATE case_events e SET hash = arbiter_event_digest(e.prev_hash, e)"
               f" WHERE e.case_id = {lit} AND e.seq = {seq};")
    h.psql(db.admin_url, f"UPDATE cases SET offer_cents = 130900 WHERE id = {lit}"
                         " AND offer_cents IS NOT NULL;" + enable + ";")
    assert "130900" in h.psql_value(db.admin_url, "SELECT data::text FROM case_events"
                                    f" WHERE case_id = {lit} AND action = 'offer';")

    rc, text = verify(arbiter_bin, db, None)
    assert rc == 0, text + h.psql(db.admin_url, "SELECT seq, action, encode(prev_hash, 'hex'),"
                                  f" encode(hash, 'hex') FROM case_events WHERE case_id = {lit}"
                                  " ORDER BY seq;").stdout   # the digests alone cannot tell
    rc, text = verify(arbiter_bin, db, log, pub)
    assert rc == 1, text
    assert f"BROKEN case {cid} event seq " in text and "rewritten" in text, text

    # the forger edits the recorded leaves too: then no leaf gives the signed root
    h.psql(db.admin_url, "UPDATE checkpoint_leaves l SET digest = e.hash FROM case_events e"
                         f" WHERE l.case_id = {lit} AND e.case_id = l.case_id AND e.seq = l.seq;")
    rc, text = verify(arbiter_bin, db, log, pub)
    assert rc == 1, text
    assert "BROKEN checkpoint " in text and "signed root" in text, text


@pytest.fixture
def two_keys(arbiter_bin, tmp_path):
    return make_key(arbiter_bin, tmp_path, "k1"), make_key(arbiter_bin, tmp_path, "k2")


def test_an_edited_or_foreign_checkpoint_line_is_detected(arbiter_bin, make_db, make_server,
                                                           tmp_path, two_keys):
    (priv1, pub1), (priv2, pub2) = two_keys
    db = make_db()
    log = tmp_path / "checkpoints.log"
    s = make_server(db.service_url, name="ckpt-edit", env=ckpt_env(priv1, log))
    for _ in range(2):
        c = h.create_case(s, h.case_body(shop_id=h.uniq("ck-shop")))
        wait_anchored(db, c["id"])
    s.stop()
    orig = log.read_text().splitlines()
    assert len(orig) >= 2, orig
    assert verify(arbiter_bin, db, log, pub1)[0] == 0

    def check(mutated: list[str], want: str, *pubs: Path) -> None:
        f = tmp_path / "mutated.log"
        f.write_text("\n".join(mutated) + "\n")
        rc, text = verify(arbiter_bin, db, f, *(pubs or (pub1,)))
        assert rc == 1 and want in text, (want, text)

    first = json.loads(orig[0])
    # a root edited (the signature no longer covers it)
    edited = dict(first, root=("0" if first["root"][0] != "0" else "1") + first["root"][1:])
    check([json.dumps(edited)] + orig[1:], "signature does not verify")
    # the same text, signed by another key but claiming the first's id
    sig2 = h.run_bin(arbiter_bin, ["checkpoint-key", "--public", str(priv2)])
    assert sig2.returncode == 0, sig2
    try:
        from cryptography.hazmat.primitives import serialization as ser
        k2 = ser.load_pem_private_key(priv2.read_bytes(), password=None)
    except ImportError:   # pragma: no cover
        pytest.fail("python3-cryptography is missing: make deps installs it")
    foreign = dict(first, sig=k2.sign(signed_text(first)).hex())
    check([json.dumps(foreign)] + orig[1:], "signature does not verify")
    # signed by the other key under its own id: unknown unless its public key is given
    kid2 = h.run_bin(arbiter_bin, ["checkpoint-key", "--public", str(pub2)]).stderr.split()[2]
    own = dict(first, key_id=kid2)
    own["sig"] = k2.sign(signed_text(own)).hex()
    check([json.dumps(own)] + orig[1:], f"signed by key {kid2}, which no --public-key is")
    # a line dropped or two swapped: the chain of prev hashes breaks
    check(orig[1:2] + orig[:1] + orig[2:], "does not follow checkpoint")
    if len(orig) >= 3:
        check(orig[:1] + orig[2:], "does not follow checkpoint")
    check(orig[:1] + ["{not json"], "checkpoint log line 2")
    # a line whose leaves the database lost
    h.psql(db.admin_url, f"DELETE FROM checkpoint_leaves WHERE no = {first['no']} AND idx = 0;")
    check(orig, f"BROKEN checkpoint {first['no']}: the database records")


def test_key_rotation_verifies_with_every_key_and_not_with_one(arbiter_bin, make_db,
                                                                make_server, tmp_path, two_keys):
    (priv1, pub1), (priv2, pub2) = two_keys
    db = make_db()
    log = tmp_path / "checkpoints.log"
    s1 = make_server(db.service_url, name="ckpt-k1", env=ckpt_env(priv1, log))
    c = h.create_case(s1, h.case_body(shop_id=h.uniq("rot-shop")))
    wait_anchored(db, c["id"])
    assert s1.stop() == 0
    s2 = make_server(db.service_url, name="ckpt-k2", env=ckpt_env(priv2, log))
    c = h.create_case(s2, h.case_body(shop_id=h.uniq("rot-shop")))
    wait_anchored(db, c["id"])
    assert s2.stop() == 0
    ids = {x["key_id"] for x in lines(log)}
    assert len(ids) == 2, lines(log)
    nos = [x["no"] for x in lines(log)]
    assert nos == list(range(1, len(nos) + 1)), nos   # one chain across the rotation

    rc, text = verify(arbiter_bin, db, log, pub1, pub2)
    assert rc == 0, text
    for only in (pub1, pub2):
        rc, text = verify(arbiter_bin, db, log, only)
        assert rc == 1 and "which no --public-key is" in text, text
    # a private key file serves as its own public key; unknown flags are errors
    assert verify(arbiter_bin, db, log, priv1, priv2)[0] == 0
    assert verify(arbiter_bin, db, log, pub1, pub2, extra=["--frobnicate"])[0] == 2
    assert verify(arbiter_bin, db, log)[0] == 2            # a log needs its keys
    assert verify(arbiter_bin, db, None, pub1)[0] == 2
    # checkpoint-key never overwrites a key
    cp = h.run_bin(arbiter_bin, ["checkpoint-key", "--out", str(priv1)])
    assert cp.returncode == 1 and "exists" in cp.stderr, cp


def test_the_endpoint_serves_a_checkpoint_python_verifies(arbiter_bin, make_db, make_server,
                                                          tmp_path):
    if Ed25519PublicKey is None:   # pragma: no cover
        pytest.fail("python3-cryptography is missing: make deps installs it")
    creds = tmp_path / "credentials"
    creds.mkdir()
    make_key(arbiter_bin, creds, "arbiter-checkpoint-key")
    (creds / "arbiter-checkpoint-key.pem").rename(creds / "arbiter-checkpoint-key")
    db = make_db()
    log = tmp_path / "checkpoints.log"
    # the key as systemd hands over a LoadCredential=
    s = make_server(db.service_url, name="ckpt-api",
                    env={"CREDENTIALS_DIRECTORY": str(creds), "ARBITER_CHECKPOINT_LOG": str(log),
                         "ARBITER_CHECKPOINT_INTERVAL": "1"})
    p = h.assert_problem(s.get("/v1/checkpoints/latest"), 404)
    assert "no checkpoint" in p["detail"], p
    c = h.create_case(s, h.case_body(shop_id=h.uniq("api-shop")))
    wait_anchored(db, c["id"])

    r = s.get("/v1/checkpoints/latest")
    assert r.status == 200, r
    cp = r.body
    assert json.dumps(cp, separators=(",", ":")) == log.read_text().splitlines()[-1]
    keys = s.get("/v1/checkpoints/keys")
    assert keys.status == 200, keys
    (k,) = keys.body["items"]
    assert k["key_id"] == cp["key_id"] and k["algorithm"] == "Ed25519", keys.body
    pub = serialization.load_pem_public_key(k["public_key_pem"].encode())
    assert isinstance(pub, Ed25519PublicKey)
    pub.verify(bytes.fromhex(cp["sig"]), signed_text(cp))          # raises when it fails
    with pytest.raises(InvalidSignature):
        pub.verify(bytes.fromhex(cp["sig"]), signed_text(dict(cp, leaves=cp["leaves"] + 1)))
    # the root is the RFC 6962 hash of the leaves the database recorded
    rows = h.psql(db.admin_url, "SELECT case_id, seq, encode(digest, 'hex') FROM"
                  f" checkpoint_leaves WHERE no = {cp['no']} ORDER BY idx;").stdout.split()
    leaves = [x.split("|") for x in rows]
    assert len(leaves) == cp["leaves"]
    assert rfc6962_root([f"{a}\x1f{b}\x1f{d}".encode() for a, b, d in leaves]).hex() == cp["root"]

    # platform keys only: a seller's is refused
    _, seller = db.make_key("seller", shops="api-shop-x", name="ckpt-seller")
    for path in ("/v1/checkpoints/latest", "/v1/checkpoints/keys"):
        h.assert_problem(s.get(path, key=seller), 403)
        assert s.get(path, key=db.keys["ops"]).status == 200
    # a replica without a key serves the database's latest and lists no key
    plain = make_server(db.service_url, name="ckpt-nokey")
    assert plain.get("/v1/checkpoints/latest").body["no"] >= cp["no"]
    assert plain.get("/v1/checkpoints/keys").body == {"items": []}


def rfc6962_root(data: list[bytes]) -> bytes:
    import hashlib

    def mth(d: list[bytes]) -> bytes:
        if len(d) == 1:
            return hashlib.sha256(b"\0" + d[0]).digest()
        k = 1
        while k * 2 < len(d):
            k *= 2
        return hashlib.sha256(b"\1" + mth(d[:k]) + mth(d[k:])).digest()
    return mth(data) if data else hashlib.sha256(b"").digest()


def test_checkpoint_settings_are_checked_at_start(arbiter_bin, tmp_path):
    priv, pub = make_key(arbiter_bin, tmp_path, "k1")
    log = str(tmp_path / "c.log")
    cases = [
        ({"ARBITER_CHECKPOINT_LOG": log}, "ARBITER_CHECKPOINT_KEY_FILE: must name"),
        ({"ARBITER_CHECKPOINT_KEY_FILE": str(priv)}, "ARBITER_CHECKPOINT_LOG: must name"),
        (dict(ckpt_env(priv, tmp_path / "c.log"), ARBITER_CHECKPOINT_INTERVAL="0"),
         "ARBITER_CHECKPOINT_INTERVAL: expected an integer"),
        (ckpt_env(pub, tmp_path / "c.log"), "not a PEM private key"),
        (ckpt_env(priv, tmp_path / "no-such-dir" / "c.log"), "ARBITER_CHECKPOINT_LOG"),
    ]
    for env, want in cases:
        cp = h.run_bin(arbiter_bin, ["serve"], env=dict(env, ARBITER_LISTEN="127.0.0.1:1"),
                       database_url="postgresql://127.0.0.1:1/none?connect_timeout=1",
                       timeout=60)
        assert cp.returncode == 2 and want in cp.stderr, (env, cp.returncode, cp.stderr)
