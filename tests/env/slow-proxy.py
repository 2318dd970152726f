#!/usr/bin/env python3
"""A rate-limiting TCP proxy on loopback: slow-proxy.py LISTEN_PORT UPSTREAM_PORT BYTES_PER_SEC.

Puts a slow link between the Docker daemon and the test registry, so that a
pull lasts long enough to be cancelled in the middle.
"""
import asyncio
import sys


async def pump(reader, writer, rate):
    try:
        while data := await reader.read(16384):
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(len(data) / rate)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(listen, upstream, rate):
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, server_w, rate), pump(server_r, client_w, rate))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
