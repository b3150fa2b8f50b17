package rawio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Connections from a Dialer read like any net.Conn: data, EOF when
// the peer closes, and deadlines.
func TestRawReadDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			peers <- c
		}
		close(peers)
	}()
	c, err := Dialer{}.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-peers
	if peer == nil {
		t.Fatal("no connection accepted")
	}

	// A read with nothing to read waits, and honours the deadline.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 8)
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing to read: %v, want a deadline error", err)
	}
	_ = c.SetReadDeadline(time.Time{})

	// Data written later is read once it arrives.
	go func() {
		time.Sleep(20 * time.Millisecond) // let the read wait first
		_, _ = peer.Write([]byte("*3\r\n$7\r\nmessage"))
	}()
	var got []byte
	for len(got) < len("*3\r\n$7\r\nmessage") {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "*3\r\n$7\r\nmessage" {
		t.Fatalf("read %q", got)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}

	peer.Close()
	if _, err := c.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
	c.Close()
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

// Writes larger than the socket buffers wait for room and complete; a
// write deadline ends a write nobody reads.
func TestRawWrites(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			peers <- c
		}
		close(peers)
	}()
	c, err := Dialer{}.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-peers
	if peer == nil {
		t.Fatal("no connection accepted")
	}
	defer peer.Close()

	big := make([]byte, 16<<20) // far beyond loopback socket buffers
	for i := range big {
		big[i] = byte(i)
	}
	read := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		read <- got
	}()
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if got := <-read; !bytes.Equal(got, big) {
		t.Fatalf("peer read %d bytes, not what was written", len(got))
	}

	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
		t.Fatalf("write nobody reads: %d, %v; want a deadline error", n, err)
	}
}
