package channel

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/testenv"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		n  Name
		ok bool
	}{
		{Home(109000000000000001), true},
		{Hashtag("Café", true), true},
		{"", true},
		{Name(strings.Repeat("x", MaxNameLen)), true},
		{Name(strings.Repeat("x", MaxNameLen+1)), false},
		// 163 three-byte letters fill a local hashtag channel exactly.
		{Hashtag(strings.Repeat("日", 163), true), true},
		{Hashtag(strings.Repeat("日", 164), true), false},
		{Hashtag(strings.Repeat("日", 165), false), true},
		{List(strings.Repeat("0", 5000) + "5001"), false},
		{Hashtag(strings.Repeat("a", 5000), false), false},
	}
	for _, tt := range tests {
		err := CheckName(tt.n)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrNameTooLong) {
			t.Errorf("CheckName(%d bytes) = %v, want ok=%v", len(tt.n), err, tt.ok)
		}
	}
}

// The bound is what it says: the worst names (every byte escaped) under the
// longest prefix reach MaxSubjectLen at most, and a NATS server with its
// default limits carries them over TCP, both as a subscription and as a
// published message.
func TestLongestSubjectsReachNATS(t *testing.T) {
	s := Subjects{Prefix: maxPrefix}
	names := []Name{
		Name(strings.Repeat("\xff", MaxNameLen)),
		Name(strings.Repeat("é", MaxNameLen/2)),
		Name(strings.Repeat(":", MaxNameLen)),
		Name(strings.Repeat("\xff", MaxNameLen-1) + ":"),
		Hashtag(strings.Repeat("日", 163), true),
	}
	nc, err := nats.Connect(testenv.NATSServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	longest := 0
	for _, n := range names {
		if err := CheckName(n); err != nil {
			t.Fatal(err)
		}
		subj := s.Of(n)
		checkSubject(t, string(n), subj)
		longest = max(longest, len(subj))
		sub, err := nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(5 * time.Second); err != nil || m.Subject != subj {
			t.Fatalf("%d-byte subject: %v", len(subj), err)
		}
		_ = sub.Unsubscribe()
	}
	if !nc.IsConnected() {
		t.Fatal("connection lost")
	}
	if longest > MaxSubjectLen || MaxSubjectLen > 4096/2 {
		t.Fatalf("longest subject %d bytes, MaxSubjectLen %d", longest, MaxSubjectLen)
	}
	t.Logf("longest subject: %d bytes; MaxSubjectLen %d", longest, MaxSubjectLen)
}
