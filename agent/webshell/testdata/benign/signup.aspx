<%@ Page Language="C#" %>
<script runat="server">
protected void Submit_Click(object sender, EventArgs e) {
    string email = Request.Form["email"];
    using (var conn = new System.Data.SqlClient.SqlConnection(ConfigurationManager.ConnectionStrings["app"].ConnectionString))
    using (var cmd = new System.Data.SqlClient.SqlCommand("INSERT INTO signups(email) VALUES (@email)", conn)) {
        cmd.Parameters.AddWithValue("@email", email);
        conn.Open();
        cmd.ExecuteNonQuery();
    }
    Result.Text = Server.HtmlEncode("Thanks, " + email);
}
</script>
<form runat="server"><asp:TextBox id="email" runat="server" /><asp:Button OnClick="Submit_Click" Text="Sign up" runat="server" /><asp:Label id="Result" runat="server" /></form>
