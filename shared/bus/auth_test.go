package bus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/channel"
)

// Edges get in with the configured credentials only; the internal user's
// name does not help without its secret.
func TestServerAdmitsEdges(t *testing.T) {
	userPass := Credentials{User: "spillway", Password: "pw"}
	token := Credentials{Token: "tok"}
	tests := []struct {
		name   string
		server Credentials
		client []nats.Option
		ok     bool
	}{
		{"anonymous server, no credentials", Credentials{}, nil, true},
		{"anonymous server, any credentials", Credentials{}, []nats.Option{nats.UserInfo("who", "ever")}, true},
		{"anonymous server, internal name", Credentials{}, []nats.Option{nats.UserInfo(internalUser, "guess")}, false},
		{"user, right", userPass, []nats.Option{nats.UserInfo("spillway", "pw")}, true},
		{"user, wrong password", userPass, []nats.Option{nats.UserInfo("spillway", "px")}, false},
		{"user, wrong user", userPass, []nats.Option{nats.UserInfo("other", "pw")}, false},
		{"user, none", userPass, nil, false},
		{"user, token given", userPass, []nats.Option{nats.Token("pw")}, false},
		{"token, right", token, []nats.Option{nats.Token("tok")}, true},
		{"token, wrong", token, []nats.Option{nats.Token("tox")}, false},
		{"token, none", token, nil, false},
		{"token, as password", token, []nats.Option{nats.UserInfo("x", "tok")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Edges: tc.server})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			nc, err := nats.Connect(srv.ClientURL(), append(tc.client, nats.Timeout(5*time.Second))...)
			if tc.ok != (err == nil) {
				t.Fatalf("connect: %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Fatalf("refused with %v", err)
				}
				return
			}
			nc.Close()
		})
	}
}

// An edge may subscribe to events and resync requests and publish
// interest; nothing else.
func TestEdgePermissions(t *testing.T) {
	subj := channel.Subjects{Prefix: "inst"}
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Subjects: subj})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	denied := make(chan error, 16)
	edge, err := nats.Connect(srv.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer edge.Close()
	// Violations are reported asynchronously but in order: after each
	// step, a publish on a sentinel subject (always denied) marks where the
	// step's own report would have been.
	const sentinel = "sentinel.x"
	expect := func(what string, allowed bool) {
		t.Helper()
		if err := edge.Publish(sentinel, nil); err != nil {
			t.Fatal(err)
		}
		var got error
		for {
			select {
			case err := <-denied:
				if strings.Contains(err.Error(), sentinel) {
					if allowed != (got == nil) {
						t.Errorf("%s: %v (want allowed=%v)", what, got, allowed)
					}
					return
				}
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Fatalf("%s: %v", what, err)
				}
				got = err
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no report for the sentinel", what)
			}
		}
	}
	home := subj.Of(channel.Home(1))
	for _, tc := range []struct {
		subject string
		sub     bool
		pub     bool
	}{
		{home, true, false},
		{subj.Of(channel.System(1)), true, false},
		{subj.Timelines(), true, false},
		{subj.Resync(), true, false},
		{subj.Interest(), false, true},
		{">", false, false},
		{"inst.>", false, false},
		{"mastodon.ch.timeline.1", false, false},
		{"_INBOX.x", false, false},
	} {
		if _, err := edge.SubscribeSync(tc.subject); err != nil {
			t.Fatal(err)
		}
		expect("subscribe "+tc.subject, tc.sub)
		if err := edge.Publish(tc.subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
		expect("publish "+tc.subject, tc.pub)
	}

	// The internal user may do what the broker does.
	internal, err := srv.Connect("broker", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer internal.Close()
	sub, err := edge.SubscribeSync(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := edge.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := internal.Publish(home, []byte("event")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "event" {
		t.Fatalf("edge got %v, %v", m, err)
	}
}

func TestCredentialsValidate(t *testing.T) {
	tests := []struct {
		c         Credentials
		forServer bool
		want      string
	}{
		{Credentials{}, true, ""},
		{Credentials{User: "u", Password: "p"}, true, ""},
		{Credentials{Token: "t"}, true, ""},
		{Credentials{CredsFile: "f"}, false, ""},
		{Credentials{NKeySeedFile: "f"}, false, ""},
		{Credentials{User: "u"}, false, "needs a password"},
		{Credentials{Password: "p"}, false, "needs a password"},
		{Credentials{User: "u", Password: "p", Token: "t"}, false, "only one"},
		{Credentials{Token: "t", CredsFile: "f"}, false, "only one"},
		{Credentials{CredsFile: "f"}, true, "for clients"},
		{Credentials{NKeySeedFile: "f"}, true, "for clients"},
	}
	for _, tc := range tests {
		err := tc.c.validate(tc.forServer)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v (server %v): %v, want %q", tc.c, tc.forServer, err, tc.want)
		}
	}
}
