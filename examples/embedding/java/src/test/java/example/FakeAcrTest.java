package example;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLParameters;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.testcontainers.containers.BindMode;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;

/**
 * The fake-registry image as Azure Container Registry: wait for its ready line, then
 * exchange an `az acr login` identity token at /oauth2/token (grant_type=refresh_token) and
 * read a manifest with the access token, over TLS by hostname with the fleet's CA.
 */
class FakeAcrTest {
    static final String ACR = "myregistry.azurecr.io";
    static final String IDENTITY = "java-example-identity-token-0123456789";
    static final String FLEET = String.join("\n",
            "[[host]]", "name = \"acr\"", "hostname = \"" + ACR + "\"",
            "[host.profile]", "kind = \"acr\"",
            "[[host.principal]]", "name = \"identity\"", "kind = \"refresh-token\"",
            "secret = \"" + IDENTITY + "\"", "grants = [\"**:pull\"]",
            "[[host.seed]]", "repository = \"base/run\"", "tag = \"1\"", "");

    @TempDir Path dir;

    @Test
    void identityTokenIsExchangedAndTheManifestServed() throws Exception {
        Files.writeString(dir.resolve("fleet.toml"), FLEET);
        Files.createDirectories(dir.resolve("state"));
        try (GenericContainer<?> registry = new GenericContainer<>(
                DockerImageName.parse("regcompat/fake-registry:0.1.0"))
                .withNetworkMode("host")
                .withFileSystemBind(dir.toString(), "/regcompat", BindMode.READ_WRITE)
                .withCommand("serve", "--config", "/regcompat/fleet.toml",
                        "--state-dir", "/regcompat/state")
                .waitingFor(Wait.forLogMessage("\\{\"ready\".*\\n", 1))) {
            registry.start();
            // The ready line's host objects have sorted keys: addr, hostname, name, …
            Matcher m = Pattern.compile("\"addr\":\"([0-9.]+):([0-9]+)\",\"hostname\":\""
                    + Pattern.quote(ACR) + "\"").matcher(registry.getLogs());
            assertTrue(m.find(), "ACR in the ready line: " + registry.getLogs());
            InetAddress addr = InetAddress.getByName(m.group(1));
            int port = Integer.parseInt(m.group(2));

            KeyStore roots = KeyStore.getInstance(KeyStore.getDefaultType());
            roots.load(null, null);
            roots.setCertificateEntry("fleet", CertificateFactory.getInstance("X.509")
                    .generateCertificate(new ByteArrayInputStream(
                            Files.readAllBytes(dir.resolve("state/ca.pem")))));
            TrustManagerFactory tmf =
                    TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(roots);
            SSLContext tls = SSLContext.getInstance("TLS");
            tls.init(null, tmf.getTrustManagers(), null);

            String token = request(tls, addr, port, "POST", "/oauth2/token", null,
                    "grant_type=refresh_token&service=" + ACR
                            + "&scope=repository:base/run:pull&refresh_token=" + IDENTITY);
            Matcher t = Pattern.compile("\"access_token\":\"([^\"]+)\"").matcher(token);
            assertTrue(t.find(), "an access token: " + token);
            String manifest = request(tls, addr, port, "GET", "/v2/base/run/manifests/1",
                    t.group(1), null);
            assertTrue(manifest.startsWith("HTTP/1.1 200"), manifest);
            System.out.println("GET /v2/base/run/manifests/1 with the exchanged token: "
                    + manifest.lines().findFirst().orElse(""));
        }
    }

    /** One HTTP/1.1 request over TLS to the fleet's address, by hostname (SNI, Host). */
    static String request(SSLContext tls, InetAddress addr, int port, String method,
            String path, String bearer, String form) throws Exception {
        Socket raw = new Socket();
        raw.connect(new InetSocketAddress(addr, port), 5000);
        try (SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket(raw, ACR, port, true)) {
            SSLParameters p = s.getSSLParameters();
            p.setServerNames(List.of(new SNIHostName(ACR)));
            p.setEndpointIdentificationAlgorithm("HTTPS");
            s.setSSLParameters(p);
            StringBuilder r = new StringBuilder(method + " " + path + " HTTP/1.1\r\nHost: " + ACR
                    + "\r\nConnection: close\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n");
            if (bearer != null) r.append("Authorization: Bearer ").append(bearer).append("\r\n");
            byte[] body = form == null ? new byte[0] : form.getBytes();
            if (form != null) r.append("Content-Type: application/x-www-form-urlencoded\r\n");
            r.append("Content-Length: ").append(body.length).append("\r\n\r\n");
            s.getOutputStream().write(r.toString().getBytes());
            s.getOutputStream().write(body);
            s.getOutputStream().flush();
            return new String(s.getInputStream().readAllBytes());
        }
    }
}
