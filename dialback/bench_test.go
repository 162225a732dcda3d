package dialback

import "testing"

// The key is computed once per dialback request and once per verification,
// never per stanza; these benchmarks keep it from becoming a cost on link
// set-up when thousands of links come up at once.

func BenchmarkKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Key("s3cr3tf0rd1alb4ck", "example.net", "example.org", "D60000229F")
	}
}

// BenchmarkSecretKey adds the domain normalisation that Secret does first.
func BenchmarkSecretKey(b *testing.B) {
	s := Secret("s3cr3tf0rd1alb4ck")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Key("example.net", "example.org", "D60000229F"); err != nil {
			b.Fatal(err)
		}
	}
}
