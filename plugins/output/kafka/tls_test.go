package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// selfSigned returns a TLS server configuration for 127.0.0.1 with a
// self-signed certificate, and that certificate's PEM file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, ca
}

// TestTLS produces over TLS to a broker whose certificate tls_ca signs,
// and fails to start without it.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv, ca := selfSigned(t)
	c := cluster(t, 1, kfake.TLS(srv))
	h := start(t, c.ListenAddrs(), "tls_ca=\""+ca+"\"\n")
	h.flow(1, false)
	h.Flush()
	h.waitDone(1, 20*time.Second)
	if h.sink.Written() != 1 {
		t.Fatalf("written %d", h.sink.Written())
	}
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, srv))
	recs := consume(t, c.ListenAddrs(), 1, 20*time.Second, kgo.DialTLSConfig(&tls.Config{RootCAs: pool}))
	if recs[0].obj["ct.id"] != float64(1) {
		t.Fatalf("consumed %s", recs[0].value)
	}

	cfg := newConfig()
	cfg.Brokers, cfg.TLS = c.ListenAddrs()[0], 1 // the system CAs do not sign it
	s, _ := direct(t, cfg)
	plugintest.StartFails(t, s, "can't connect to kafka:")
}

func mustParse(t *testing.T, c *tls.Config) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
