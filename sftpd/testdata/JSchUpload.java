// JSchUpload logs in with JSch (com.jcraft.jsch), uploads a file and lists
// the folder: what an export job written in Java does. sftpd's tests run it
// with Debian's libjsch-java (0.1.54/0.1.55).
//
// Usage: java -cp jsch.jar JSchUpload.java HOST PORT USER KEY KNOWN_HOSTS LOCAL REMOTE
//
// KNOWN_HOSTS pins the server's host keys (StrictHostKeyChecking yes). It
// prints the cipher and MAC lists JSch offers, then "listing" and the names
// in the folder; it exits 1 with the exception's message when the login or
// a request fails.
import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;
import java.util.Vector;

public class JSchUpload {
    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: JSchUpload HOST PORT USER KEY KNOWN_HOSTS LOCAL REMOTE");
            System.exit(2);
        }
        JSch jsch = new JSch();
        jsch.addIdentity(args[3]);
        jsch.setKnownHosts(args[4]);
        System.out.println("ciphers " + JSch.getConfig("cipher.c2s"));
        System.out.println("macs " + JSch.getConfig("mac.c2s"));
        Session session = jsch.getSession(args[2], args[0], Integer.parseInt(args[1]));
        session.setConfig("StrictHostKeyChecking", "yes");
        session.setConfig("PreferredAuthentications", "publickey");
        try {
            session.connect(30000);
            ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
            sftp.connect(30000);
            sftp.put(args[5], args[6]);
            StringBuilder names = new StringBuilder("listing");
            Vector<?> entries = sftp.ls(".");
            for (Object o : entries) {
                String name = ((ChannelSftp.LsEntry) o).getFilename();
                if (!name.equals(".") && !name.equals("..")) {
                    names.append(' ').append(name);
                }
            }
            System.out.println(names);
            sftp.disconnect();
            session.disconnect();
        } catch (Exception e) {
            System.out.println("error " + e.getMessage());
            System.exit(1);
        }
    }
}
