package bus

import (
	"slices"
	"strings"
	"testing"
)

func TestInterestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		max   int
		msgs  int
	}{
		{"empty", nil, 100, 0},
		{"one", []string{"timeline:1"}, 100, 1},
		{"fits", []string{"timeline:1", "timeline:2", "timeline:list:5"}, 100, 1},
		{"splits", []string{"timeline:1", "timeline:2", "timeline:3"}, 21, 2},
		{"oversized name alone", []string{"timeline:" + strings.Repeat("x", 50), "timeline:2"}, 20, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs := EncodeInterest(tc.names, tc.max)
			if len(msgs) != tc.msgs {
				t.Fatalf("got %d messages, want %d", len(msgs), tc.msgs)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, DecodeInterest(m)...)
			}
			if !slices.Equal(got, tc.names) && !(len(got) == 0 && len(tc.names) == 0) {
				t.Fatalf("round trip: got %q, want %q", got, tc.names)
			}
		})
	}
}

func TestDecodeInterestRejects(t *testing.T) {
	got := DecodeInterest([]byte("\nfoo\ntimeline:1\n\n" + "timeline:" + strings.Repeat("a", MaxNameLen) + "\nsubscribed:x"))
	if !slices.Equal(got, []string{"timeline:1"}) {
		t.Fatalf("got %q", got)
	}
}

func FuzzDecodeInterest(f *testing.F) {
	f.Add([]byte("timeline:1\ntimeline:public"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, n := range DecodeInterest(body) {
			if !strings.HasPrefix(n, "timeline:") || strings.ContainsRune(n, '\n') || len(n) > MaxNameLen {
				t.Fatalf("bad name %q", n)
			}
		}
	})
}
