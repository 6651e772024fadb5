"""One HTTP/1.1 response read off a socket, for the bench scripts' own
Python clients (they run from the repository root and import it with
sys.path.insert(0, "bench"))."""


def read_response(sock):
    """Reads one response whose body has a Content-Length; returns (head,
    body). Raises EOFError if the server closes first."""
    got = b""
    while b"\r\n\r\n" not in got:
        got += _more(sock)
    head, body = got.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += _more(sock)
    return head, body


def _more(sock):
    more = sock.recv(65536)
    if not more:
        raise EOFError("the server closed the connection mid-response")
    return more
