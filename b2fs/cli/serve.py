"""``b2fs serve``: run the local B2 server (placeholder until the emulator lands)."""


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the local B2 server")
    p.set_defaults(func=lambda args: 1)
