// The version reported by --version and ftp_proxy_build_info; kept in step with package.json.
export const VERSION = '0.1.0'
