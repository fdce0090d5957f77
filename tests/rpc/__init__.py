"""Tests of the rpc package: the codec and framing, and the TCP server and client."""
