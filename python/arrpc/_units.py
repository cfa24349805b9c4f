"""_units.py -- seconds (0.5.0's unit) to the milliseconds of the C core."""


def ms(seconds, name):
    """None -> 0 (no limit); a positive number of seconds -> at least 1 ms."""
    if seconds is None:
        return 0
    if seconds < 0:
        raise ValueError("%s must not be negative" % name)
    return max(1, int(round(seconds * 1000))) if seconds > 0 else 0


def secret_bytes(secret):
    """0.5.0 took the shared secret as a str; bytes work too."""
    if secret is None or isinstance(secret, (bytes, bytearray)):
        return secret
    return str(secret).encode("utf-8")
