"""A Warden client of its own: Google's protobuf for Python over
warden_client.proto, framing written here. Drives create, run, spawn +
stream and destroy against the socket given as argv[1], checking each
answer; prints one line per step and exits non-zero on the first surprise.

Usage: warden_client.py SOCKET GENERATED_DIR HANDLE
"""
import socket
import sys

sys.path.insert(0, sys.argv[2])
import warden_client_pb2 as pb  # noqa: E402

T = pb.Message.Type


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def send(self, type_, request):
        payload = pb.Message(type=type_, payload=request.SerializeToString()).SerializeToString()
        self.sock.sendall(b"%d\r\n" % len(payload) + payload + b"\r\n")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def receive(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        payload = self._read(int(line))
        if self._read(2) != b"\r\n":
            raise SystemExit("bad frame terminator")
        message = pb.Message()
        message.ParseFromString(payload)
        return message

    def call(self, type_, request, response_class):
        self.send(type_, request)
        message = self.receive()
        if message.type == T.Value("Error"):
            err = pb.ErrorResponse()
            err.ParseFromString(message.payload)
            raise SystemExit("error response: %s" % err.message)
        if message.type != type_:
            raise SystemExit("answer of type %d to a request of type %d" % (message.type, type_))
        response = response_class()
        response.ParseFromString(message.payload)
        return response


def expect(what, got, want):
    if got != want:
        raise SystemExit("%s: got %r, want %r" % (what, got, want))
    print("ok %s" % what)


def main():
    c = Client(sys.argv[1])
    handle = sys.argv[3]
    c.call(T.Value("Ping"), pb.PingRequest(), pb.PingResponse)
    print("ok ping")
    r = c.call(T.Value("Create"), pb.CreateRequest(handle=handle, grace_time=600), pb.CreateResponse)
    expect("create", r.handle, handle)
    r = c.call(T.Value("Run"), pb.RunRequest(handle=handle, script="echo from python; echo e >&2; exit 5"), pb.RunResponse)
    expect("run exit_status", r.exit_status, 5)
    expect("run stdout", r.stdout, "from python\n")
    expect("run stderr", r.stderr, "e\n")
    job = c.call(T.Value("Spawn"), pb.SpawnRequest(handle=handle, script="echo one; sleep 0.2; echo two; exit 2"), pb.SpawnResponse).job_id
    c.send(T.Value("Stream"), pb.StreamRequest(handle=handle, job_id=job))
    out = ""
    while True:
        message = c.receive()
        if message.type != T.Value("Stream"):
            raise SystemExit("stream: message of type %d" % message.type)
        r = pb.StreamResponse()
        r.ParseFromString(message.payload)
        if r.HasField("exit_status"):
            expect("stream exit_status", r.exit_status, 2)
            break
        expect("stream name", r.name, "stdout")
        out += r.data
    expect("stream data", out, "one\ntwo\n")
    c.call(T.Value("Destroy"), pb.DestroyRequest(handle=handle), pb.DestroyResponse)
    print("ok destroy")


main()
