package edge

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spillway/spillway/shared/testenv"
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
		o.finish(nil, reasonShutdown)
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
	closed := make(chan closeReason, 1)
	limits := &outboxLimits{maxFrames: 3, maxBytes: 1 << 20, writeTimeout: time.Second}
	o := newOutbox(server, limits, func(why closeReason) { closed <- why })
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
	if why := <-closed; why != reasonSlow {
		t.Fatalf("closed as %v, not as slow", why)
	}
	if _, _, why := o.stats(); why != reasonSlow {
		t.Fatalf("stats say %v", why)
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
	defer o.abort(reasonShutdown)
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

// The outbox counts the bytes the socket took, written at once or by the
// flusher, and the event frames handed to it, and keeps the first reason
// it was closed for.
func TestOutboxStatsAndReason(t *testing.T) {
	tests := []struct {
		name  string
		close func(o *outbox)
		want  closeReason
	}{
		{"finish, then the client leaves", func(o *outbox) { o.finish([]byte("bye"), reasonKill); o.end() }, reasonKill},
		{"client leaves, then a kill", func(o *outbox) { o.end(); o.finish([]byte("bye"), reasonKill) }, reasonClientLeft},
		{"abort", func(o *outbox) { o.abort(reasonPingTimeout); o.abort(reasonShutdown) }, reasonPingTimeout},
		{"shed", func(o *outbox) { o.finish(nil, reasonNATSLost); o.abort(reasonShutdown) }, reasonNATSLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			got := make(chan int, 1)
			go func() {
				b, _ := io.ReadAll(client)
				got <- len(b)
			}()
			closed := make(chan closeReason, 1)
			limits := &outboxLimits{maxFrames: 8, maxBytes: 1 << 20, writeTimeout: time.Second}
			o := newOutbox(server, limits, func(why closeReason) { closed <- why })
			calls := 0
			o.write = func(f frame) (int, error) {
				calls++
				if calls == 1 {
					return 4, errWouldBlock // the rest goes through the flusher
				}
				return 0, errWouldBlock
			}
			ev := frame{head: []byte("head"), body: []byte("body"), tail: []byte("tail")}
			if !o.sendFrame(ev) || !o.send([]byte("ping")) || !o.sendFrame(ev) {
				t.Fatal("send refused")
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if n, _, _ := o.stats(); n != 28 {
					return fmt.Errorf("%d bytes counted, want 28", n)
				}
				return nil
			})
			tc.close(o)
			if why := <-closed; why != tc.want {
				t.Fatalf("onClose told %v, want %v", why, tc.want)
			}
			n, events, why := o.stats()
			if why != tc.want || events != 2 {
				t.Fatalf("stats: %d events, reason %v; want 2, %v", events, why, tc.want)
			}
			if read := <-got; int64(read)+4 != n {
				t.Fatalf("client read %d bytes after the 4 written directly; %d counted", read, n)
			}
		})
	}
}
