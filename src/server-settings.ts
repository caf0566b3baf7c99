// The FTP servers' own settings for their passive mode, named in the proxy's hints and in
// diagnose's fixes: one text for both, so an operator reads the same advice in either.

/** The settings that set a server's passive port range. */
export const PASSIVE_RANGE_SETTINGS =
  'vsftpd pasv_min_port/pasv_max_port, ProFTPD PassivePorts, pure-ftpd -p, pyftpdlib passive_ports (-r), FileZilla Server "Use custom port range", IIS FTP Firewall Support "Data Channel Port Range"'

/** The settings that set the address a server puts in its 227. */
export const SERVER_ADDRESS_SETTINGS =
  'vsftpd pasv_address, ProFTPD MasqueradeAddress, pure-ftpd -P, pyftpdlib masquerade_address, FileZilla Server "Use the following host", IIS "External IP Address of Firewall"'
