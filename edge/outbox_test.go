package edge

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// A frame in parts that the socket takes only partly must go out whole and
// in order, whatever the split point: the rest is queued and flushed.
func TestOutboxPartialWriteOfFrameInParts(t *testing.T) {
	fr := frame{head: []byte("HEAD:"), body: []byte("shared body bytes"), tail: []byte(":TAIL")}
	next := []byte("|next frame")
	want := append(fr.bytes(), next...)
	for n := 0; n <= fr.len(); n++ {
		client, server := net.Pipe()
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(client)
			got <- b
		}()
		var direct bytes.Buffer
		limits := &outboxLimits{maxFrames: 8, maxBytes: 1 << 20, writeTimeout: time.Second}
		o := newOutbox(server, limits, nil)
		first := true
		o.write = func(f frame) (int, error) {
			if !first {
				return 0, errWouldBlock
			}
			first = false
			direct.Write(f.bytes()[:n])
			return n, nil
		}
		if !o.sendFrame(fr) || !o.send(next) {
			t.Fatalf("split %d: send refused", n)
		}
		o.finish(nil)
		b := <-got
		if all := append(direct.Bytes(), b...); !bytes.Equal(all, want) {
			t.Fatalf("split %d: wrote %q, want %q", n, all, want)
		}
	}
}

// A client that stops reading is disconnected once its queue holds
// maxFrames frames, however many parts they have.
func TestOutboxCountsFramesNotParts(t *testing.T) {
	_, server := net.Pipe()
	closed := make(chan bool, 1)
	limits := &outboxLimits{maxFrames: 3, maxBytes: 1 << 20, writeTimeout: time.Second}
	o := newOutbox(server, limits, func(slow bool) { closed <- slow })
	o.write = func(frame) (int, error) { return 0, errWouldBlock }
	o.hold() // nothing reaches the pipe, as with a full socket buffer
	fr := frame{head: []byte("h"), body: []byte("b"), tail: []byte("t")}
	for i := range 3 {
		if !o.sendFrame(fr) {
			t.Fatalf("frame %d refused", i)
		}
	}
	if o.sendFrame(fr) {
		t.Fatal("fourth frame accepted")
	}
	if slow := <-closed; !slow {
		t.Fatal("closed, but not as slow")
	}
}

// Writing a frame to a real socket allocates nothing, whole or in parts.
func TestOutboxWriteAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := client.Read(buf); err != nil {
				return
			}
		}
	}()
	limits := &outboxLimits{maxFrames: 512, maxBytes: 4 << 20, writeTimeout: time.Second}
	o := newOutbox(server, limits, nil)
	defer o.abort()
	whole := frame{body: bytes.Repeat([]byte("w"), 3500)}
	parts := frame{head: []byte("head"), body: whole.body, tail: []byte("tail")}
	allocs := testing.AllocsPerRun(200, func() {
		o.sendFrame(whole)
		o.sendFrame(parts)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per two writes", allocs)
	}
}
