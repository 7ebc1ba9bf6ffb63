// fakeedge stands in for the Cloudflare edge on loopback, for the e2e suite: a connector
// started with `--edge ADDR --protocol quic` (and SSL_CERT_FILE naming the certificate this
// program writes) connects to it, registers its connections, pushes its local configuration,
// and is sent the HTTP requests given with -request, as a visitor's requests would reach it.
// The connector then exports what it exports in production once connected and serving: its
// registration, RPC and response metrics.
//
// It speaks cloudflared's own protocol with cloudflared's own packages (the registration RPC
// server and the request stream of tunnelrpc). With -refuse-first, the first registration is
// refused, so that the connector counts a failed registration, and retries.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/quic-go/quic-go"

	"github.com/cloudflare/cloudflared/tunnelrpc"
	"github.com/cloudflare/cloudflared/tunnelrpc/pogs"
	rpcquic "github.com/cloudflare/cloudflared/tunnelrpc/quic"
)

// The server name and ALPN protocol cloudflared dials the edge with over QUIC.
const (
	serverName = "quic.cftunnel.com"
	alpn       = "argotunnel"
)

type requests []string

func (r *requests) String() string     { return strings.Join(*r, ",") }
func (r *requests) Set(v string) error { *r = append(*r, v); return nil }

type edge struct {
	refuseFirst bool
	refused     atomic.Bool
	requests    requests
	sendOnce    sync.Once
}

// registrar answers one QUIC connection's registration RPCs.
type registrar struct {
	edge       *edge
	registered chan struct{}
	once       sync.Once
}

func (r *registrar) RegisterConnection(_ context.Context, _ pogs.TunnelAuth, tunnelID uuid.UUID, connIndex byte, _ *pogs.ConnectionOptions) (*pogs.ConnectionDetails, error) {
	if r.edge.refuseFirst && r.edge.refused.CompareAndSwap(false, true) {
		log.Printf("refused the registration of connection %d of tunnel %s", connIndex, tunnelID)
		return nil, errors.New("refused by the stand-in edge")
	}
	log.Printf("registered connection %d of tunnel %s", connIndex, tunnelID)
	r.once.Do(func() { close(r.registered) })
	return &pogs.ConnectionDetails{UUID: uuid.New(), Location: "loopback"}, nil
}

func (r *registrar) UnregisterConnection(context.Context) {}

func (r *registrar) UpdateLocalConfiguration(_ context.Context, config []byte) error {
	log.Printf("local configuration pushed (%d bytes)", len(config))
	return nil
}

// send sends one GET request for target over a new stream of conn and returns the status.
func send(ctx context.Context, conn quic.Connection, target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return "", err
	}
	defer stream.CancelRead(0)
	_ = stream.SetDeadline(time.Now().Add(20 * time.Second))
	rcs := rpcquic.RequestClientStream{ReadWriteCloser: stream}
	if err := rcs.WriteConnectRequestData(target, pogs.ConnectionTypeHTTP,
		pogs.Metadata{Key: "HttpMethod", Val: "GET"},
		pogs.Metadata{Key: "HttpHost", Val: u.Host},
		pogs.Metadata{Key: "HttpHeader:User-Agent", Val: "fakeedge"},
	); err != nil {
		return "", err
	}
	// No request body: close our side of the stream.
	_ = stream.Close()
	resp, err := rcs.ReadConnectResponseData()
	if err != nil {
		return "", err
	}
	if resp.Error != "" {
		return "", errors.New(resp.Error)
	}
	_, _ = io.Copy(io.Discard, stream)
	for _, m := range resp.Metadata {
		if m.Key == "HttpStatus" {
			return m.Val, nil
		}
	}
	return "", errors.New("no HttpStatus in the response")
}

func (e *edge) serve(ctx context.Context, conn quic.Connection) {
	control, err := conn.AcceptStream(ctx)
	if err != nil {
		log.Printf("no control stream: %v", err)
		return
	}
	r := &registrar{edge: e, registered: make(chan struct{})}
	go func() {
		select {
		case <-r.registered:
		case <-ctx.Done():
			return
		}
		e.sendOnce.Do(func() {
			// Let the connector take the registration's answer first.
			time.Sleep(500 * time.Millisecond)
			for _, target := range e.requests {
				status, err := send(ctx, conn, target)
				if err != nil {
					fmt.Printf("request %s: error %v\n", target, err)
				} else {
					fmt.Printf("request %s: %s\n", target, status)
				}
			}
			fmt.Println("requests sent")
		})
	}()
	if err := tunnelrpc.NewRegistrationServer(r).Serve(ctx, control); err != nil && ctx.Err() == nil {
		log.Printf("control stream ended: %v", err)
	}
}

// certificate makes a self-signed certificate for serverName and writes it, PEM, to caOut.
func certificate(caOut string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: serverName},
		DNSNames:              []string{serverName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(caOut, pemBytes, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7844", "UDP address to serve QUIC on")
	caOut := flag.String("ca-out", "", "file to write the edge's certificate to (PEM), for SSL_CERT_FILE")
	e := &edge{}
	flag.BoolVar(&e.refuseFirst, "refuse-first", false, "refuse the first registration")
	flag.Var(&e.requests, "request", "URL to send a GET request for, once a connection is registered (repeatable)")
	flag.Parse()
	if *caOut == "" {
		log.Fatal("-ca-out is required")
	}
	cert, err := certificate(*caOut)
	if err != nil {
		log.Fatal(err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}}
	listener, err := quic.ListenAddr(*listen, tlsConfig, &quic.Config{
		EnableDatagrams: true,
		MaxIdleTimeout:  30 * time.Second,
		KeepAlivePeriod: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving QUIC on %s", *listen)
	ctx := context.Background()
	for {
		conn, err := listener.Accept(ctx)
		if err != nil {
			log.Fatal(err)
		}
		go e.serve(ctx, conn)
	}
}
