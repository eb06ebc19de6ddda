// A Go `testing` example: start the fake-registry image (cargo xtask image) with the
// container engine's CLI, talk to its ACR by hostname over TLS with the fleet's CA, and
// exchange an `az acr login` identity token for an access token, as docker does.
//
//	REGCOMPAT_ENGINE="docker" go test ./...           # or "podman --root … --runroot …"
package embedding_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	image    = "regcompat/fake-registry:0.1.0"
	acr      = "myregistry.azurecr.io"
	identity = "go-example-identity-token-0123456789"
)

const fleet = `[[host]]
name = "acr"
hostname = "myregistry.azurecr.io"
[host.profile]
kind = "acr"
[[host.principal]]
name = "identity"
kind = "refresh-token"
secret = "go-example-identity-token-0123456789"
grants = ["**:pull"]
[[host.seed]]
repository = "base/run"
tag = "1"
`

type ready struct {
	Ready struct {
		Hosts []struct {
			Hostname string `json:"hostname"`
			Addr     string `json:"addr"`
		} `json:"hosts"`
	} `json:"ready"`
}

func TestFakeACRIdentityToken(t *testing.T) {
	engine := strings.Fields(os.Getenv("REGCOMPAT_ENGINE"))
	if len(engine) == 0 {
		engine = []string{"docker"}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.toml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(engine[1:], "run", "--rm", "--network", "host", "-v", dir+":/regcompat",
		image, "serve", "--config", "/regcompat/fleet.toml", "--state-dir", "/regcompat/state")
	cmd := exec.Command(engine[0], args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The CLI forwards SIGTERM to the container; the fake exits 0 on it.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	// Wait for the ready line, never a sleep.
	var r ready
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), `{"ready"`) {
			if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	addrs := map[string]string{}
	for _, h := range r.Ready.Hosts {
		addrs[h.Hostname+":443"] = h.Addr
	}
	if addrs[acr+":443"] == "" {
		t.Fatalf("no %s in the ready line", acr)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "state", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			// The hostname stays in the URL, SNI and certificate check; only the dial
			// goes to the address the fleet bound.
			DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
				if a, ok := addrs[address]; ok {
					address = a
				}
				return dialer.DialContext(ctx, network, address)
			},
		},
	}

	challenge, err := client.Get("https://" + acr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	challenge.Body.Close()
	t.Logf("GET /v2/ → %d, WWW-Authenticate: %s", challenge.StatusCode, challenge.Header.Get("WWW-Authenticate"))
	if challenge.StatusCode != http.StatusUnauthorized {
		t.Fatalf("want 401, got %d", challenge.StatusCode)
	}

	resp, err := client.PostForm("https://"+acr+"/oauth2/token", url.Values{
		"grant_type":    {"refresh_token"},
		"service":       {acr},
		"scope":         {"repository:base/run:pull"},
		"refresh_token": {identity},
	})
	if err != nil {
		t.Fatal(err)
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&token); err != nil || token.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	req, _ := http.NewRequest("GET", "https://"+acr+"/v2/base/run/manifests/1", nil)
	req.Header.Set("Authorization", "Bearer "+token.AccessToken)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	manifest, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	manifest.Body.Close()
	t.Logf("GET /v2/base/run/manifests/1 with the exchanged token → %d, %s", manifest.StatusCode, manifest.Header.Get("Docker-Content-Digest"))
	if manifest.StatusCode != http.StatusOK {
		t.Fatalf("want 200, got %d", manifest.StatusCode)
	}
}
