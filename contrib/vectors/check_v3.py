#!/usr/bin/env python3
"""Checks PROTOCOL.md's version-3 vectors (16 to 19, and 21) with an
independent Noise implementation, as PROTOCOL.md §14 says was done:

    pip install noiseprotocol cryptography pyaegis
    python3 contrib/vectors/check_v3.py

It runs the IK handshake of §16.2 with the fixed keys of vector 16 through
Python's `noiseprotocol`, seals with `cryptography`'s AES-256-GCM and
ChaCha20-Poly1305 and `pyaegis`'s AEGIS-256X2 (§16.5), and compares every byte with the hex blocks of
PROTOCOL.md, except the CRC32Cs of the INITIAL and ACCEPT (the Rust tests
check them; DATA packets of version 3 have none, §16.3). Exit status 0 when all match.
"""
import pathlib
import re
import sys
import warnings

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from noise.connection import Keypair, NoiseConnection
from pyaegis import Aegis256X2

warnings.simplefilter("ignore")  # noiseprotocol warns about fixed ephemerals.
NAME = b"Noise_IK_25519_ChaChaPoly_BLAKE2s"
C, S = bytes.fromhex("1122334455667788"), bytes.fromhex("99aabbccddeeff00")
HANDSHAKE = "03538880007530804000008010000044b0"
STREAM_PARAMETERS = "0c4064802000008100000044b0"
PAYLOAD_1 = bytes.fromhex(HANDSHAKE + STREAM_PARAMETERS + "1e020201")  # offers AES, ChaCha
PAYLOAD_2 = bytes.fromhex(HANDSHAKE + STREAM_PARAMETERS + "1e0102")  # chooses AES
MARCH = bytes.fromhex("050006054d61726368")  # STREAM with FIN, "March"


def vectors():
    """The hex blocks of PROTOCOL.md, by vector name."""
    doc = (pathlib.Path(__file__).parents[2] / "PROTOCOL.md").read_text()
    out = {}
    for name, block in re.findall(r"### Vector \d+: (.+?)\n.*?```hex\n(.*?)```", doc, re.S):
        data = bytearray()
        for token in block.split():
            if "*" in token:
                byte, count = token.split("*")
                data += bytes([int(byte, 16)]) * int(count)
            else:
                data += bytes.fromhex(token)
        out[name.strip()] = bytes(data)
    return out


def party(initiator):
    n = NoiseConnection.from_name(NAME)
    n.set_prologue(b"rudp noise v3" + bytes([3, 1, 3]) + C)
    if initiator:
        n.set_as_initiator()
        n.set_keypair_from_private_bytes(Keypair.STATIC, b"\x22" * 32)
        n.set_keypair_from_private_bytes(Keypair.EPHEMERAL, b"\x33" * 32)
        server = NoiseConnection.from_name(NAME)
        server.set_keypair_from_private_bytes(Keypair.STATIC, b"\x11" * 32)
        public = server.noise_protocol.keypairs["s"].public_bytes
        n.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, public)
    else:
        n.set_as_responder()
        n.set_keypair_from_private_bytes(Keypair.STATIC, b"\x11" * 32)
        n.set_keypair_from_private_bytes(Keypair.EPHEMERAL, b"\x44" * 32)
    n.start_handshake()
    return n


def nonce(pn):
    return bytes(4) + pn.to_bytes(8, "big")


def main():
    doc = vectors()
    client, server = party(True), party(False)
    m1 = client.write_message(PAYLOAD_1)
    assert server.read_message(m1) == PAYLOAD_1
    m2 = server.write_message(PAYLOAD_2)
    assert client.read_message(m2) == PAYLOAD_2
    c2s = client.noise_protocol.cipher_state_encrypt.k
    s2c = client.noise_protocol.cipher_state_decrypt.k

    initial = bytes.fromhex("52550301") + bytes(8) + C + bytes(8)
    initial += b"\x1b" + (0x4000 | len(m1)).to_bytes(2, "big") + m1
    initial += bytes(1200 - 4 - len(initial))
    accept = bytes.fromhex("52550342") + C + S + bytes(8)
    accept += b"\x1b" + (0x4000 | len(m2)).to_bytes(2, "big") + m2
    accept += AESGCM(s2c).encrypt(nonce(0), bytes.fromhex("0200000000"), accept)
    header = bytes.fromhex("52550343") + S + (1).to_bytes(8, "big")
    data = {
        "version 3 DATA": header + AESGCM(c2s).encrypt(nonce(1), MARCH, header),
        "version 3 DATA with ChaCha20-Poly1305": header
        + ChaCha20Poly1305(c2s).encrypt(nonce(1), MARCH, header),
        # AEGIS-256X2's nonce: 24 zero bytes, then the packet number.
        "version 3 DATA with AEGIS-256X2": header
        + Aegis256X2(tag_size=16).encrypt(c2s, bytes(24) + (1).to_bytes(8, "big"), MARCH, header),
    }
    ours = {"version 3 INITIAL": initial, "version 3 ACCEPT": accept, **data}
    failed = 0
    for name, packet in ours.items():
        theirs = doc[name]
        if name in ("version 3 INITIAL", "version 3 ACCEPT"):
            theirs = theirs[:-4]  # Without the CRC32C.
        ok = theirs == packet
        failed += not ok
        print(f"{'ok' if ok else 'MISMATCH'}: vector '{name}' ({len(packet)} bytes compared)")
    print(f"keys: client-to-server {c2s.hex()}, server-to-client {s2c.hex()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
