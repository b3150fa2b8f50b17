package channel_test

import (
	"fmt"

	"github.com/spillway/spillway/shared/channel"
)

// The naming scheme: Mastodon channel names as Rails publishes them, and the
// NATS subject each one maps to under the default prefix.
func Example_subjects() {
	s := channel.Subjects{} // Prefix "" means "mastodon"
	for _, n := range []channel.Name{
		channel.Public(channel.ScopeAll, false),
		channel.Public(channel.ScopeLocal, true),
		channel.Home(109000000000000001),
		channel.Notifications(109000000000000001),
		channel.Direct(42),
		channel.List("7"),
		channel.Hashtag("Café", true),
		channel.Hashtag("日本", false),
		channel.Hashtag("😀", false),
		channel.AccessToken(99),
		channel.System(42),
	} {
		fmt.Printf("%-42s %-5v %s\n", n, n.Tracked(), s.Of(n))
	}
	fmt.Println(s.Timelines())
	fmt.Println(s.Interest())
	// Output:
	// timeline:public                            true  mastodon.ch.timeline.public
	// timeline:public:local:media                true  mastodon.ch.timeline.public.local.media
	// timeline:109000000000000001                true  mastodon.ch.timeline.109000000000000001
	// timeline:109000000000000001:notifications  true  mastodon.ch.timeline.109000000000000001.notifications
	// timeline:direct:42                         true  mastodon.ch.timeline.direct.42
	// timeline:list:7                            true  mastodon.ch.timeline.list.7
	// timeline:hashtag:cafe:local                true  mastodon.ch.timeline.hashtag.cafe.local
	// timeline:hashtag:日本                        true  mastodon.ch.timeline.hashtag.%E6%97%A5%E6%9C%AC
	// timeline:hashtag:                          true  mastodon.ch.timeline.hashtag.%
	// timeline:access_token:99                   false mastodon.ch.timeline.access_token.99
	// timeline:system:42                         false mastodon.ch.timeline.system.42
	// mastodon.ch.timeline.>
	// mastodon.ctl.interest
}

func ExampleNormalizeHashtag() {
	for _, tag := range []string{"Café", "#Foo-Bar", "ΟΔΟΣ", "Ｆｏｏ", "İstanbul"} {
		fmt.Println(channel.NormalizeHashtag(tag))
	}
	// Output:
	// cafe
	// foobar
	// οδος
	// foo
	// istanbul
}

func ExampleSubjects_Parse() {
	s := channel.Subjects{Prefix: "spill"}
	n, err := s.Parse("spill.ch.timeline.hashtag.%.local")
	fmt.Printf("%q %v\n", n, err)
	// Output:
	// "timeline:hashtag::local" <nil>
}
