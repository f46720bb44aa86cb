// JSchExport is the Java JSch (com.jcraft.jsch) client of rosterd's
// interop suite, run by cmd/rosterd/interop_test.go with Debian's
// libjsch-java (0.1.54/0.1.55); see gosftp/main.go for the step language.
//
// Usage: java -cp jsch.jar JSchExport.java STEP...
//
// It logs in with the private key EXPORT_KEY (PEM: JSch 0.1.x reads no
// other form), checks the host key against EXPORT_KNOWN_HOSTS
// (StrictHostKeyChecking yes), prints the cipher and MAC lists it offers,
// and performs the steps. append is put(..., APPEND) with the bytes past
// the remote size and resume is put(..., RESUME): JSch writes both at the
// remote size. mtime is setMtime.
import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Vector;

public class JSchExport {
    public static void main(String[] args) throws Exception {
        JSch jsch = new JSch();
        jsch.addIdentity(System.getenv("EXPORT_KEY"));
        jsch.setKnownHosts(System.getenv("EXPORT_KNOWN_HOSTS"));
        System.out.println("ciphers " + JSch.getConfig("cipher.c2s"));
        System.out.println("macs " + JSch.getConfig("mac.c2s"));
        Session session = jsch.getSession(System.getenv("EXPORT_USER"), System.getenv("EXPORT_HOST"),
                Integer.parseInt(System.getenv("EXPORT_PORT")));
        session.setConfig("StrictHostKeyChecking", "yes");
        session.setConfig("PreferredAuthentications", "publickey");
        ChannelSftp sftp;
        try {
            session.connect(30000);
            sftp = (ChannelSftp) session.openChannel("sftp");
            sftp.connect(30000);
        } catch (Exception e) {
            System.out.println("error connect: " + e.getMessage());
            System.exit(1);
            return;
        }
        for (String s : args) {
            boolean mustFail = s.startsWith("!");
            String body = mustFail ? s.substring(1) : s;
            try {
                step(sftp, body.split(" "));
            } catch (Exception e) {
                if (mustFail) {
                    System.out.println("refused " + body + ": " + e.getMessage());
                    continue;
                }
                System.out.println("error " + body + ": " + e);
                System.exit(1);
            }
            if (mustFail) {
                System.out.println("error " + body + ": succeeded; want a refusal");
                System.exit(1);
            }
            System.out.println("ok " + body);
        }
        sftp.disconnect();
        session.disconnect();
    }

    static void step(ChannelSftp sftp, String[] f) throws Exception {
        switch (f[0]) {
            case "ls": {
                List<String> names = new ArrayList<>();
                for (Object o : (Vector<?>) sftp.ls(f[1])) {
                    String name = ((ChannelSftp.LsEntry) o).getFilename();
                    if (!name.equals(".") && !name.equals("..")) {
                        names.add(name);
                    }
                }
                Collections.sort(names);
                System.out.println("ls " + f[1] + ": " + String.join(" ", names));
                return;
            }
            case "put":
                sftp.put(f[1], f[2]);
                return;
            case "append": {
                long size = sftp.stat(f[2]).getSize();
                try (InputStream in = new FileInputStream(f[1])) {
                    in.skipNBytes(size);
                    sftp.put(in, f[2], ChannelSftp.APPEND);
                }
                return;
            }
            case "resume":
                sftp.put(f[1], f[2], ChannelSftp.RESUME);
                return;
            case "rename":
                sftp.rename(f[1], f[2]);
                return;
            case "chmod":
                sftp.chmod(Integer.parseInt(f[1], 8), f[2]);
                return;
            case "mtime":
                sftp.setMtime(f[2], Integer.parseInt(f[1]));
                return;
            case "get":
                sftp.get(f[1], f[2]);
                return;
            default:
                throw new IllegalArgumentException("unknown step " + f[0]);
        }
    }
}
