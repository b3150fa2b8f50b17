package jsjson

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// checkEnvelope compares DecodeEnvelope with Parse and Get, returning
// whether the fast path was taken.
func checkEnvelope(t *testing.T, in []byte) (Envelope, bool) {
	t.Helper()
	env, ok := DecodeEnvelope(in)
	if !ok {
		if env.Event != nil || env.Payload != nil || env.HasQueuedAt || env.QueuedAt != 0 {
			t.Fatalf("DecodeEnvelope(%q) bailed out with %+v", in, env)
		}
		return env, false
	}
	v, err := Parse(in)
	if err != nil {
		t.Fatalf("DecodeEnvelope(%q) ok but Parse fails: %v", in, err)
	}
	if v.Kind() != Object {
		t.Fatalf("DecodeEnvelope(%q) ok on a %v", in, v.Kind())
	}
	for _, m := range []struct {
		key string
		got []byte
	}{{"event", env.Event}, {"payload", env.Payload}} {
		mv := v.Get(m.key)
		if mv == nil {
			if m.got != nil {
				t.Fatalf("DecodeEnvelope(%q).%s = %q, want nil", in, m.key, m.got)
			}
			continue
		}
		if want := mv.AppendJSON(nil); m.got == nil || !bytes.Equal(m.got, want) {
			t.Fatalf("DecodeEnvelope(%q).%s\n got %q\nwant %q", in, m.key, m.got, want)
		}
	}
	q, isNum := v.Get("queued_at").Num()
	if env.HasQueuedAt != isNum || math.Float64bits(env.QueuedAt) != math.Float64bits(q) {
		t.Fatalf("DecodeEnvelope(%q) queued_at = %v, %v; want %v, %v", in, env.QueuedAt, env.HasQueuedAt, q, isNum)
	}
	return env, true
}

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name, in          string
		event, payload    string // "" for nil
		queuedAt          float64
		hasQueuedAt, fast bool
	}{
		{name: "update", in: `{"event":"update","payload":{"id":"1","content":"\u003cp\u003e"},"queued_at":1714564800000}`,
			event: `"update"`, payload: `{"id":"1","content":"<p>"}`, queuedAt: 1714564800000, hasQueuedAt: true, fast: true},
		{name: "delete", in: `{"event":"delete","payload":"111"}`, event: `"delete"`, payload: `"111"`, fast: true},
		{name: "spec example", in: `{"event":"x","payload":{"b":1,"a":{"z":1.50,"big":12345678901234567890,"u":"\u00e9\u2028"}}}`,
			event: `"x"`, payload: "{\"b\":1,\"a\":{\"z\":1.5,\"big\":12345678901234567000,\"u\":\"é\u2028\"}}", fast: true},
		{name: "scalar payloads", in: `{"payload":5,"event":"e"}`, event: `"e"`, payload: `5`, fast: true},
		{name: "array payload", in: `{"event":"e","payload":[1,"a"]}`, event: `"e"`, payload: `[1,"a"]`, fast: true},
		{name: "order and whitespace", in: " { \"queued_at\" : -0 , \"payload\" : [ 1 ] , \"event\" : \"\\u0065\" } ",
			event: `"e"`, payload: `[1]`, queuedAt: math.Copysign(0, -1), hasQueuedAt: true, fast: true},
		{name: "escaped keys", in: `{"\u0065vent":"a","p\u0061yload":null,"queued\u005fat":2.5}`,
			event: `"a"`, payload: `null`, queuedAt: 2.5, hasQueuedAt: true, fast: true},
		{name: "empty object", in: `{}`, fast: true},
		{name: "other keys ignored", in: `{"a":{"a":1,"a":2,"1":0},"event":"e","b":"` + "\xff" + `","c":[1e999,{"2":1,"1":2}],"d":"\uD800","3":4}`,
			event: `"e"`, fast: true},
		{name: "queued_at not a number", in: `{"event":"e","queued_at":"123"}`, event: `"e"`, fast: true},
		{name: "queued_at overflows", in: `{"queued_at":1e400}`, queuedAt: math.Inf(1), hasQueuedAt: true, fast: true},
		{name: "queued_at big", in: `{"queued_at":12345678901234567890}`, queuedAt: 12345678901234567890, hasQueuedAt: true, fast: true},
		{name: "not an object", in: `["event"]`},
		{name: "string", in: `"x"`},
		{name: "empty", in: ``},
		{name: "duplicate event", in: `{"event":"a","event":"b"}`},
		{name: "duplicate payload", in: `{"payload":1,"x":0,"payload":2}`},
		{name: "duplicate queued_at", in: `{"queued_at":1,"queued_at":"x"}`},
		{name: "escaped duplicate", in: `{"event":"a","\u0065vent":"b"}`},
		{name: "bail inside payload", in: `{"event":"e","payload":{"a":1,"a":2}}`},
		{name: "invalid ignored member", in: `{"event":"e","x":[1,]}`},
		{name: "bad escape in ignored member", in: `{"event":"e","x":"\q"}`},
		{name: "control char in ignored member", in: "{\"event\":\"e\",\"x\":\"\t\"}"},
		{name: "bad literal in ignored member", in: `{"event":"e","x":nul}`},
		{name: "bad number in ignored member", in: `{"event":"e","x":01}`},
		{name: "bad queued_at", in: `{"queued_at":-}`},
		{name: "trailing data", in: `{"event":"e"} x`},
		{name: "trailing comma", in: `{"event":"e",}`},
		{name: "missing colon", in: `{"event" "e"}`},
		{name: "too deep ignored member", in: `{"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`},
		{name: "deep ignored member at the limit", in: `{"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`, fast: true},
		{name: "too deep payload", in: `{"payload":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, ok := checkEnvelope(t, []byte(tt.in))
			if ok != tt.fast {
				t.Fatalf("ok = %v, want %v", ok, tt.fast)
			}
			if !ok {
				return
			}
			if string(env.Event) != tt.event || (env.Event == nil) != (tt.event == "") {
				t.Errorf("Event = %q, want %q", env.Event, tt.event)
			}
			if string(env.Payload) != tt.payload || (env.Payload == nil) != (tt.payload == "") {
				t.Errorf("Payload = %q, want %q", env.Payload, tt.payload)
			}
			if env.HasQueuedAt != tt.hasQueuedAt || math.Float64bits(env.QueuedAt) != math.Float64bits(tt.queuedAt) {
				t.Errorf("QueuedAt = %v, %v; want %v, %v", env.QueuedAt, env.HasQueuedAt, tt.queuedAt, tt.hasQueuedAt)
			}
		})
	}
}

func TestDecodeEnvelopeRailsMessages(t *testing.T) {
	for _, msg := range railsMessages(t) {
		if _, ok := checkEnvelope(t, msg); !ok {
			t.Errorf("DecodeEnvelope bailed out on %.100q", msg)
		}
	}
}

func TestDecodeEnvelopeSlicesIndependent(t *testing.T) {
	src := []byte(`{"event":"update","payload":{"a":1},"queued_at":1}`)
	env, ok := DecodeEnvelope(src)
	if !ok {
		t.Fatal("bailed out")
	}
	for i := range src {
		src[i] = 'X'
	}
	_ = append(env.Event, "garbage"...)
	if string(env.Event) != `"update"` || string(env.Payload) != `{"a":1}` {
		t.Errorf("Event %q Payload %q", env.Event, env.Payload)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"event":"e","x":{"a":1,"a":2},"queued_at":-0,"payload":"\uD800"}`))
	f.Add([]byte(`{"\u0065vent":"a","event":"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEnvelope(t, data)
		// As a payload, data takes the fast path whenever Canonical does.
		msg := append([]byte(`{"event":"update","payload":`), data...)
		msg = append(msg, `,"queued_at":1714564800000}`...)
		canon, cok := Canonical(nil, data)
		env, eok := checkEnvelope(t, msg)
		if !cok {
			return
		}
		if _, err := Parse(msg); err != nil {
			return // one level deeper than data: may exceed MaxDepth
		}
		if !eok || !bytes.Equal(env.Payload, canon) {
			t.Fatalf("payload %q: Canonical %q, envelope %q (ok %v)", data, canon, env.Payload, eok)
		}
	})
}
